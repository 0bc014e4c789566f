use super::*;

#[test]
fn allow_cidrs_is_a_list_or_a_joined_string_and_a_bad_entry_names_the_key() {
    let listed = CidrList::List(vec!["10.0.0.0/8".into(), "::1".into()]);
    let listed = policy("webhook", false, &listed).unwrap();
    assert_eq!(listed.allow_cidrs.len(), 2);
    assert_eq!(listed.allow_cidrs[1].to_string(), "::1/128");
    let joined = CidrList::Joined("127.0.0.0/8, fd00::/8".into());
    assert_eq!(
        policy("webhook", true, &joined).unwrap().allow_cidrs.len(),
        2
    );
    let bad = CidrList::List(vec!["10.0.0.0/33".into()]);
    let error = policy("webhook", false, &bad).unwrap_err().to_string();
    assert!(
        error.starts_with("kinds.webhook.allow_cidrs: `10.0.0.0/33` is not a network"),
        "{error}"
    );
}

#[test]
fn literal_addresses_are_checked_in_every_spelling() {
    let strict = AddressPolicy::default();
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:a00:1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0/",
        "http://[::]/",
        // The URL parser reads these as 127.0.0.1, as browsers do.
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
    ] {
        let error = check_url(&strict, url).unwrap_err();
        assert!(error.contains(" is "), "{url}: {error}");
    }
    assert!(check_url(&strict, "https://8.8.8.8/hook").is_ok());
    assert!(
        check_url(&strict, "https://example.com/hook").is_ok(),
        "names go to the resolver"
    );
    assert!(check_url(&strict, "ftp://example.com/").is_err());
}

#[test]
fn redirects_are_named_without_their_path() {
    let message = redirect_message("receiver", 302, Some("http://10.0.0.1:8080/secret?token=x"));
    assert_eq!(
        message,
        "receiver answered 302, a redirect to http://10.0.0.1:8080; redirects are never followed"
    );
    assert_eq!(
        redirect_message("endpoint", 301, None),
        "endpoint answered 301, a redirect; redirects are never followed"
    );
}

/// The whole path through reqwest: the resolver's refusal comes back out of the client's error
/// chain as a `fatal` failure naming the address.
#[test]
fn a_refused_name_is_a_fatal_failure_through_the_client() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _inside = runtime.enter();
    let outgoing =
        Outgoing::new("webhook", Duration::from_secs(2), AddressPolicy::default()).unwrap();
    let error = runtime
        .block_on(outgoing.post("http://localhost:9/hook").unwrap().send())
        .unwrap_err();
    let failure = transport_failure(&error);
    assert_eq!(failure.class, ErrorClass::Fatal, "{failure}");
    assert!(
        failure.message.starts_with("target refused: ") && failure.message.contains("loopback"),
        "{}",
        failure.message
    );
    let literal = outgoing.post("http://127.0.0.1:9/hook").unwrap_err();
    assert_eq!(literal.class, ErrorClass::Fatal);
}

#[test]
fn endpoints_are_keyed_by_their_normalized_url() {
    assert_eq!(
        endpoint_key("HTTPS://Example.COM:443"),
        "https://example.com/"
    );
    assert_eq!(
        endpoint_key(" http://a.example/hook#x "),
        "http://a.example/hook"
    );
    assert_eq!(
        endpoint_key("http://a.example/hook?tenant=1"),
        "http://a.example/hook?tenant=1"
    );
    assert_ne!(
        endpoint_key("http://a.example/a"),
        endpoint_key("http://a.example/b")
    );
}
