"""Signs incoming-webhook test requests with the senders' own libraries.

Reads a JSON list on stdin, each item {"scheme": "stripe" | "standard", "secret": ...,
"body": <text>, "timestamp": <unix s>, "id": <webhook-id, standard only>}, and writes a JSON
list of the header maps to send with each body. Stripe's header comes from stripe-python's
`WebhookSignature.generate_signature_header` and is checked with `Webhook.construct_event`
(when the timestamp is current); Standard Webhooks' from `standardwebhooks.Webhook.sign`,
checked with `Webhook.verify`. Used by tests/tests/hooks.rs and deploy/bench/hooks.py.
"""

import json
import sys
import time
from datetime import datetime, timezone

import stripe
from standardwebhooks import Webhook as StandardWebhook


def stripe_headers(item):
    header = stripe.WebhookSignature.generate_signature_header(
        item["body"], item["secret"], timestamp=item["timestamp"]
    )
    if abs(time.time() - item["timestamp"]) < 60:
        stripe.Webhook.construct_event(item["body"], header, item["secret"])
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def standard_headers(item):
    hook = StandardWebhook(item["secret"])
    when = datetime.fromtimestamp(item["timestamp"], tz=timezone.utc)
    signature = hook.sign(item["id"], when, item["body"])
    headers = {
        "webhook-id": item["id"],
        "webhook-timestamp": str(item["timestamp"]),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }
    if abs(time.time() - item["timestamp"]) < 60:
        hook.verify(item["body"], headers)
    return headers


def main():
    signers = {"stripe": stripe_headers, "standard": standard_headers}
    items = json.load(sys.stdin)
    json.dump([signers[item["scheme"]](item) for item in items], sys.stdout)


if __name__ == "__main__":
    main()
