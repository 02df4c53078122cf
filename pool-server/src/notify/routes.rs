//! Who hears what. The operator's `--alert-webhook` destinations hear every alert (but an
//! account's own part of an event, which they hear once as the pool's notice); each
//! `--alert-route "MATCHERS -> DESTINATION"` sends what its matchers select (an account
//! pattern, a worker pattern, a rule, a severity) to one more destination; an account's own
//! subscriptions hear that account's alerts.

use super::channel::Target;
use super::destination::Destination;
use super::matcher::Matchers;
use super::{subscriptions, Alert, AlertState, POOL};
use crate::store::Backend;

/// One route: what it selects, and where that goes.
#[derive(Debug, Clone)]
pub struct Route {
    pub matchers: Matchers,
    pub destination: Destination,
}

impl Route {
    /// `MATCHERS -> DESTINATION`, e.g. `account=big* severity=critical -> slack:https://...`.
    pub fn parse(text: &str) -> Result<Route, String> {
        let (matchers, destination) = text
            .split_once("->")
            .ok_or("a route is MATCHERS -> DESTINATION (account=alice* rule=worker_offline -> mailto:ops@example.com)")?;
        Ok(Route {
            matchers: Matchers::parse(matchers)?,
            destination: Destination::new(Target::parse(destination)?),
        })
    }
}

/// The operator's destinations and routes.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Every alert (`--alert-webhook`).
    pub everything: Vec<Destination>,
    /// What each route selects (`--alert-route`).
    pub routes: Vec<Route>,
}

impl Routing {
    /// Every destination the operator configured, to find one by id.
    pub fn find(&self, id: &str) -> Option<&Destination> {
        self.everything
            .iter()
            .chain(self.routes.iter().map(|r| &r.destination))
            .find(|d| d.id == id)
    }

    /// The destination ids `alert` goes to (each once).
    pub async fn destinations(
        &self,
        backend: &Backend,
        alert: &Alert,
    ) -> anyhow::Result<Vec<String>> {
        let mut ids: Vec<String> = Vec::new();
        let accounts_part = alert.state == AlertState::Notice && alert.account != POOL;
        if !accounts_part {
            ids.extend(self.everything.iter().map(|d| d.id.clone()));
        }
        for r in &self.routes {
            if r.matchers.matches(alert) {
                ids.push(r.destination.id.clone());
            }
        }
        if alert.account != POOL {
            ids.extend(subscriptions::destinations_of(backend, &alert.account).await?);
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_reads_matchers_then_a_destination() {
        let r =
            Route::parse("account=big* severity=critical -> slack:https://h.example/x").unwrap();
        assert_eq!(r.matchers.to_string(), "account=big* severity=critical");
        assert!(r.destination.id.starts_with("slack-"));
        let every = Route::parse(" -> https://h.example/all").unwrap();
        assert_eq!(every.matchers, Matchers::default());
        for bad in [
            "https://h.example",
            "colour=red -> https://h.example",
            "rule=x -> ftp://h",
        ] {
            assert!(Route::parse(bad).is_err(), "{bad}");
        }
    }
}
