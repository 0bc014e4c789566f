//! Creating the topics sluice needs (`sluice topics ensure`, and the tests), replicated as far
//! as the cluster allows (see `replication`).

use std::time::{Duration, Instant};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::Client,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    types::RDKafkaErrorCode,
};

use crate::{
    config::{KafkaConfig, TopicsConfig},
    kafka::{base, partitions, with_overrides, QuietContext},
    replication::Replication,
    topics::TopicSpec,
};

/// How long `ensure_topics` waits for new topics' leaders.
const LEADER_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Replication(String),
}

/// What `ensure_topics` did.
#[derive(Debug)]
pub struct Ensured {
    /// The names it created (the others existed already and were left alone).
    pub created: Vec<String>,
    /// What the created topics got.
    pub replication: Replication,
    /// Brokers the cluster reported up, which `auto` settings were worked out from.
    pub brokers: usize,
    /// Existing topics with fewer replicas than `replication.factor`, and how many they have:
    /// created earlier (on fewer brokers, say); sluice does not change existing topics.
    pub under_replicated: Vec<(String, usize)>,
}

/// Creates the topics that do not exist yet, with `topics.replication_factor` copies and
/// `topics.min_insync_replicas` (both may be `auto`: from the brokers up now), then waits until
/// every partition of every topic in `specs` has a leader, so the caller can read metadata and
/// watermarks of them at once.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    specs: &[TopicSpec],
) -> Result<Ensured, EnsureError> {
    let admin: AdminClient<QuietContext> =
        with_overrides(base(kafka), kafka).create_with_context(QuietContext)?;
    let Some(first) = specs.first() else {
        let replication =
            Replication::resolve(topics.replication_factor, topics.min_insync_replicas, 1);
        return Ok(Ensured {
            created: Vec::new(),
            replication,
            brokers: 0,
            under_replicated: Vec::new(),
        });
    };
    let brokers = broker_count(kafka, &first.name).await?;
    let replication = Replication::resolve(
        topics.replication_factor,
        topics.min_insync_replicas,
        brokers,
    );
    if let Some(problem) = replication.problem() {
        return Err(EnsureError::Replication(problem));
    }
    let created = create_missing(&admin, specs, replication).await?;

    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let existing: Vec<String> = names
        .iter()
        .filter(|n| !created.contains(n))
        .cloned()
        .collect();
    let under_replicated = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + LEADER_WAIT;
        for name in &names {
            let left = deadline.saturating_duration_since(Instant::now());
            partitions(admin.inner(), name, left.max(Duration::from_millis(1)))?;
        }
        fewer_replicas(admin.inner(), &existing, replication.factor)
    })
    .await
    .expect("the leader wait does not panic")?;
    for (topic, replicas) in &under_replicated {
        tracing::warn!(
            topic,
            replicas,
            wanted = replication.factor,
            "an existing topic has fewer replicas than topics.replication_factor; sluice leaves existing topics alone (kafka-reassign-partitions adds replicas)"
        );
    }
    Ok(Ensured {
        created,
        replication,
        brokers,
        under_replicated,
    })
}

/// The brokers a metadata answer lists: those registered and not fenced. Asked about one topic
/// of ours, so a big shared cluster is not asked to describe all of its topics.
async fn broker_count(kafka: &KafkaConfig, topic: &str) -> Result<usize, KafkaError> {
    let (config, topic) = (with_overrides(base(kafka), kafka), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer<QuietContext> = config.create_with_context(QuietContext)?;
        let metadata = client
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        Ok(metadata.brokers().len())
    })
    .await
    .expect("the metadata read does not panic")
}

async fn create_missing(
    admin: &AdminClient<QuietContext>,
    specs: &[TopicSpec],
    replication: Replication,
) -> Result<Vec<String>, KafkaError> {
    let retentions: Vec<Option<String>> = specs
        .iter()
        .map(|spec| spec.retention.map(|r| r.as_millis().to_string()))
        .collect();
    let min_insync = replication.min_insync.to_string();
    let new_topics: Vec<NewTopic> = specs
        .iter()
        .zip(&retentions)
        .map(|(spec, retention)| {
            let mut topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(replication.factor),
            )
            .set("min.insync.replicas", &min_insync);
            if spec.compacted {
                topic = topic.set("cleanup.policy", "compact");
            }
            if let Some(ms) = retention {
                topic = topic.set("retention.ms", ms);
            }
            topic
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut created = Vec::new();
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(topic = %name, error = %code, "topic creation failed");
                })
            }
        }
    }
    Ok(created)
}

/// Those of `names` with a partition on fewer than `factor` replicas, and that count.
fn fewer_replicas(
    client: &Client<QuietContext>,
    names: &[String],
    factor: i32,
) -> Result<Vec<(String, usize)>, KafkaError> {
    let wanted = usize::try_from(factor).unwrap_or(0);
    let mut found = Vec::new();
    for name in names {
        let metadata = client.fetch_metadata(Some(name), Duration::from_secs(10))?;
        let fewest = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| p.replicas().len())
            .min();
        if let Some(replicas) = fewest.filter(|r| *r < wanted) {
            found.push((name.clone(), replicas));
        }
    }
    Ok(found)
}
