//! Cross-replica cache invalidation.
//!
//! Every replica keeps a read-through session cache; when one replica revokes
//! sessions the others must drop their cached copies. Locally that is a
//! `tokio::sync::broadcast`; across replicas (PostgreSQL only, SQLite is
//! single-node) it is `NOTIFY portcullis_events` plus a listener task that
//! re-publishes what it hears.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{broadcast, watch};

use super::{SessionSelector, StoreEvent};

/// The PostgreSQL channel every replica listens on.
pub(super) const CHANNEL: &str = "portcullis_events";

/// Lagging subscribers lose events beyond this, so it is sized well above any
/// realistic burst of revocations between two cache polls.
pub(super) const BROADCAST_CAPACITY: usize = 1024;

/// PostgreSQL rejects NOTIFY payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The JSON shape on the wire. Kept private and separate from the public
/// enums so the public types can evolve without breaking mixed-version
/// replicas during a rolling upgrade.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    SessionsRevoked {
        selector: WireSelector,
    },
    /// No payload: the tenant configuration version decides what is new.
    TenantsChanged {},
    /// `users: None`: anyone in the tenant.
    DirectoryChanged {
        tenant: String,
        users: Option<Vec<String>>,
    },
    ServiceAccountChanged {
        account: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
enum WireSelector {
    Id(String),
    User(String),
    Tenant(String),
    Connection(String),
    Idp {
        connection: String,
        subject: Option<String>,
        session: Option<String>,
    },
    All,
}

/// Encodes an event for `pg_notify`. Oversized selectors degrade to `All`,
/// a directory change naming too many users to the whole tenant:
/// over-invalidating a cache is harmless, failing the revocation is not.
pub(super) fn encode(event: &StoreEvent) -> String {
    let wire = match event {
        StoreEvent::TenantsChanged => Wire::TenantsChanged {},
        StoreEvent::SessionsRevoked(selector) => Wire::SessionsRevoked {
            selector: match selector.clone() {
                SessionSelector::Id(v) => WireSelector::Id(v),
                SessionSelector::User(v) => WireSelector::User(v),
                SessionSelector::Tenant(v) => WireSelector::Tenant(v),
                SessionSelector::Connection(v) => WireSelector::Connection(v),
                SessionSelector::Idp {
                    connection,
                    subject,
                    session,
                } => WireSelector::Idp {
                    connection,
                    subject,
                    session,
                },
                SessionSelector::All => WireSelector::All,
            },
        },
        StoreEvent::DirectoryChanged { tenant, users } => {
            return directory_json(tenant, users.as_deref());
        }
        StoreEvent::ServiceAccountChanged { account } => Wire::ServiceAccountChanged {
            account: account.clone(),
        },
    };
    match serde_json::to_string(&wire) {
        Ok(json) if json.len() <= MAX_PAYLOAD => json,
        _ => ALL_JSON.to_owned(),
    }
}

const ALL_JSON: &str = r#"{"type":"sessions_revoked","selector":{"kind":"all"}}"#;

/// A directory change on the wire: named users while they fit, else the
/// tenant; a tenant id too long for a payload (never a valid one) flushes
/// every cache, which is also correct.
fn directory_json(tenant: &str, users: Option<&[String]>) -> String {
    let named = users.filter(|u| u.len() <= super::directory::MAX_NAMED_USERS);
    for users in [named, None] {
        let wire = Wire::DirectoryChanged {
            tenant: tenant.to_owned(),
            users: users.map(<[String]>::to_vec),
        };
        if let Ok(json) = serde_json::to_string(&wire)
            && json.len() <= MAX_PAYLOAD
        {
            return json;
        }
    }
    ALL_JSON.to_owned()
}

/// Decodes a payload from another replica; `None` for anything we do not
/// understand (e.g. an event type added by a newer version).
pub(super) fn decode(payload: &str) -> Option<StoreEvent> {
    let wire: Wire = serde_json::from_str(payload).ok()?;
    Some(match wire {
        Wire::TenantsChanged {} => StoreEvent::TenantsChanged,
        Wire::SessionsRevoked { selector } => StoreEvent::SessionsRevoked(match selector {
            WireSelector::Id(v) => SessionSelector::Id(v),
            WireSelector::User(v) => SessionSelector::User(v),
            WireSelector::Tenant(v) => SessionSelector::Tenant(v),
            WireSelector::Connection(v) => SessionSelector::Connection(v),
            WireSelector::Idp {
                connection,
                subject,
                session,
            } => SessionSelector::Idp {
                connection,
                subject,
                session,
            },
            WireSelector::All => SessionSelector::All,
        }),
        Wire::DirectoryChanged { tenant, users } => StoreEvent::DirectoryChanged { tenant, users },
        Wire::ServiceAccountChanged { account } => StoreEvent::ServiceAccountChanged { account },
    })
}

/// Connects a dedicated LISTEN connection. Done before `Store::open` returns
/// so that no revocation published after `open` can be missed.
pub(super) async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Re-publishes notifications from other replicas until the store is closed
/// or every `Store` clone is dropped (the `watch` sender lives in the store,
/// so its drop ends this task; it never holds the store itself).
///
/// Notifications sent while the connection is down are lost for good, so
/// after every reconnect it publishes `SessionsRevoked(All)`: subscribers
/// flush their caches rather than serve sessions revoked during the gap.
pub(super) async fn run_listener(
    pool: PgPool,
    first: PgListener,
    events: broadcast::Sender<StoreEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listener = Some(first);
    let mut backoff = BACKOFF_MIN;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let Some(active) = listener.as_mut() else {
            // Reconnect with capped exponential backoff.
            tokio::select! {
                _ = shutdown.changed() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            tokio::select! {
                _ = shutdown.changed() => break,
                result = listen(&pool) => match result {
                    Ok(fresh) => {
                        tracing::info!("store event listener reconnected");
                        listener = Some(fresh);
                        backoff = BACKOFF_MIN;
                        let _ = events.send(StoreEvent::SessionsRevoked(SessionSelector::All));
                        let _ = events.send(StoreEvent::TenantsChanged);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "store event listener could not reconnect");
                    }
                },
            }
            continue;
        };
        tokio::select! {
            // Either an explicit close or the sender dropped with the last Store.
            _ = shutdown.changed() => break,
            received = active.try_recv() => match received {
                Ok(Some(notification)) => match decode(notification.payload()) {
                    Some(event) => {
                        let _ = events.send(event);
                    }
                    None => tracing::warn!("ignoring undecodable store event"),
                },
                Ok(None) => {
                    // sqlx already reconnected and re-subscribed (eager
                    // reconnect); anything sent in between is gone.
                    tracing::warn!("store event listener lost its connection; flushing caches");
                    let _ = events.send(StoreEvent::SessionsRevoked(SessionSelector::All));
                    let _ = events.send(StoreEvent::TenantsChanged);
                }
                Err(error) => {
                    // Drop the listener (and its possibly broken connection)
                    // and rebuild it from scratch after a backoff.
                    tracing::warn!(%error, "store event listener failed");
                    listener = None;
                }
            },
        }
    }
    drop(listener);
    pool.close().await;
}

/// Records `event` for the other processes and replicas inside the
/// caller's transaction, so it exists iff the change commits: a
/// `store_events` row on SQLite, a NOTIFY (delivered at commit) on
/// PostgreSQL.
pub(super) async fn publish_in(
    conn: &mut sqlx::AnyConnection,
    backend: super::Backend,
    event: &StoreEvent,
) -> Result<(), sqlx::Error> {
    match backend {
        super::Backend::Sqlite => {
            sqlx::query("INSERT INTO store_events (payload, created_at) VALUES ($1, $2)")
                .bind(encode(event))
                .bind(super::unix_now())
                .execute(&mut *conn)
                .await?;
        }
        super::Backend::Postgres => {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(encode(event))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// How often SQLite stores look for revocations made by other processes.
pub(super) const SQLITE_POLL: Duration = Duration::from_millis(200);
/// Event rows older than this are pruned; far longer than any poll gap.
const SQLITE_EVENT_TTL_SECONDS: i64 = 3600;

/// The newest event row at `open`, read before `open` returns so that no
/// event appended afterwards can be skipped.
pub(super) async fn sqlite_high_water(pool: &sqlx::AnyPool) -> Result<i64, sqlx::Error> {
    use sqlx::Row;
    sqlx::query("SELECT COALESCE(MAX(id), 0) AS m FROM store_events")
        .fetch_one(pool)
        .await?
        .try_get::<i64, _>("m")
}

/// SQLite has no NOTIFY: re-publish rows appended to `store_events` by any
/// process (including this one: a duplicate invalidation is harmless) until
/// the store closes. Starts after the newest existing row, so history from
/// before `open` is not replayed.
pub(super) async fn poll_sqlite(
    pool: sqlx::AnyPool,
    mut last: i64,
    events: broadcast::Sender<StoreEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    use sqlx::Row;
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            () = tokio::time::sleep(SQLITE_POLL) => {}
        }
        if *shutdown.borrow() {
            break;
        }
        let rows = sqlx::query(
            "SELECT id, payload FROM store_events WHERE id > $1 ORDER BY id LIMIT 1000",
        )
        .bind(last)
        .fetch_all(&pool)
        .await;
        match rows {
            Ok(rows) => {
                for row in rows {
                    let (Ok(id), Ok(payload)) = (
                        row.try_get::<i64, _>("id"),
                        row.try_get::<String, _>("payload"),
                    ) else {
                        continue;
                    };
                    last = last.max(id);
                    if let Some(event) = decode(&payload) {
                        let _ = events.send(event);
                    }
                }
            }
            // A closed pool means the store is shutting down.
            Err(sqlx::Error::PoolClosed) => break,
            Err(error) => tracing::warn!(%error, "store event poll failed"),
        }
        ticks += 1;
        if ticks.is_multiple_of(300) {
            let cutoff = super::unix_now() - SQLITE_EVENT_TTL_SECONDS;
            let _ = sqlx::query("DELETE FROM store_events WHERE created_at < $1")
                .bind(cutoff)
                .execute(&pool)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip() {
        for selector in [
            SessionSelector::Id("abc".into()),
            SessionSelector::User("u'\"; DROP TABLE x; --".into()),
            SessionSelector::Tenant("t".into()),
            SessionSelector::Connection("c".into()),
            SessionSelector::All,
        ] {
            let event = StoreEvent::SessionsRevoked(selector);
            assert_eq!(decode(&encode(&event)), Some(event));
        }
        let event = StoreEvent::TenantsChanged;
        assert_eq!(encode(&event), r#"{"type":"tenants_changed"}"#);
        assert_eq!(decode(&encode(&event)), Some(event));
        let event = StoreEvent::ServiceAccountChanged {
            account: "sa_0123456789abcdef".into(),
        };
        assert_eq!(decode(&encode(&event)), Some(event));
    }

    #[test]
    fn oversized_selector_degrades_to_all() {
        let event = StoreEvent::SessionsRevoked(SessionSelector::User("x".repeat(10_000)));
        let json = encode(&event);
        assert!(json.len() <= MAX_PAYLOAD);
        assert_eq!(
            decode(&json),
            Some(StoreEvent::SessionsRevoked(SessionSelector::All))
        );
    }

    #[test]
    fn directory_change_round_trip() {
        for users in [None, Some(vec![]), Some(vec!["u-1".into(), "u'\"2".into()])] {
            let event = StoreEvent::DirectoryChanged {
                tenant: "acme".into(),
                users,
            };
            assert_eq!(decode(&encode(&event)), Some(event));
        }
    }

    #[test]
    fn oversized_directory_change_degrades_to_tenant() {
        let tenant_wide = Some(StoreEvent::DirectoryChanged {
            tenant: "acme".into(),
            users: None,
        });
        // too many users to name
        let many = (0..=super::super::directory::MAX_NAMED_USERS)
            .map(|i| format!("u-{i}"))
            .collect();
        let json = encode(&StoreEvent::DirectoryChanged {
            tenant: "acme".into(),
            users: Some(many),
        });
        assert_eq!(decode(&json), tenant_wide);
        // few, but too long for a NOTIFY payload
        let json = encode(&StoreEvent::DirectoryChanged {
            tenant: "acme".into(),
            users: Some(vec!["x".repeat(MAX_PAYLOAD)]),
        });
        assert!(json.len() <= MAX_PAYLOAD);
        assert_eq!(decode(&json), tenant_wide);
        // a tenant id no payload can carry: every cache is flushed
        let json = encode(&StoreEvent::DirectoryChanged {
            tenant: "t".repeat(10_000),
            users: None,
        });
        assert_eq!(
            decode(&json),
            Some(StoreEvent::SessionsRevoked(SessionSelector::All))
        );
    }

    #[test]
    fn unknown_events_are_ignored() {
        assert_eq!(decode(r#"{"type":"users_changed"}"#), None);
        assert_eq!(decode("not json"), None);
    }
}
