//! Route: which upstream serves the request. The [`Router`] decides from
//! the request's model, client and body features; with no rule matching,
//! the request goes where its client addressed it, untouched.

use bytes::Bytes;
use http::StatusCode;

use super::{Refusal, Stage};
use crate::exchange::{Exchange, RouteRecord, Target};
use crate::routing::{Candidate, Decision, Features, RouteQuery, Router};

pub struct Route<'a> {
    pub router: &'a Router,
}

/// Whether requests of `shape` at `path` can be routed: the completion
/// APIs and Anthropic's token count. Embeddings and Codex's history
/// compaction (`/responses/compact`) go where they were addressed: no other
/// upstream has their endpoint, and translating them into a completion would
/// run (and bill) one.
fn routable(shape: promptwall_llm::ApiShape, path: &str) -> bool {
    use promptwall_llm::ApiShape;
    let compact = promptwall_llm::path::classification_key(path).ends_with("/compact");
    !compact
        && [
            ApiShape::ANTHROPIC_MESSAGES,
            ApiShape::ANTHROPIC_COUNT_TOKENS,
            ApiShape::OPENAI_CHAT,
            ApiShape::OPENAI_RESPONSES,
        ]
        .contains(&shape)
}

/// Where the request goes.
#[derive(Debug, Clone)]
pub enum Routing {
    /// No rule matched: the addressed target, the client's shape and
    /// credential, exactly as without routing.
    Direct(Target),
    /// A rule matched: candidates in the order to try them.
    Planned {
        route: String,
        candidates: Vec<Candidate>,
        addressed: Target,
    },
}

impl Stage for Route<'_> {
    /// Where the client addressed the request, and its inspected body
    /// (None when the body is streamed uninspected: never routed).
    type Input = (Target, Option<Bytes>);
    type Output = Routing;

    async fn run(&self, ex: &mut Exchange, (addressed, body): Self::Input) -> Result<Routing, Refusal> {
        ex.path = addressed.uri.path().to_string();
        ex.target = Some(addressed.clone());
        let shape = ex.shape();
        let Some(body) = body.filter(|_| !self.router.is_empty() && routable(shape, &ex.path)) else {
            return Ok(Routing::Direct(addressed));
        };
        // Rules need the model and features; a body that is not JSON was
        // refused by inspection already, so this parse succeeds in practice.
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return Ok(Routing::Direct(addressed));
        };
        let model = ex.requested_model(json.get("model").and_then(|m| m.as_str()));
        let identity = ex.client.identity.as_ref();
        let query = RouteQuery {
            listener: ex.listener.as_str(),
            shape: Some(shape),
            model: model.as_deref(),
            tool: &ex.client.tool,
            user: identity.and_then(|i| i.user.as_deref()),
            executable: identity.and_then(|i| i.exe.as_deref()),
            features: Features::of(&json),
        };
        let plan = match self.router.decide(&query) {
            Decision::Direct => return Ok(Routing::Direct(addressed)),
            Decision::Routed(plan) => plan,
        };
        ex.routing = Some(RouteRecord {
            route: plan.route.clone(),
            requested_model: model.clone(),
            client_stream_usage: json.pointer("/stream_options/include_usage").and_then(|v| v.as_bool()) == Some(true),
            ..RouteRecord::default()
        });
        if let Some(wait) = plan.all_cooling() {
            let secs = wait.as_secs().max(1);
            let names: Vec<String> = plan.cooling.iter().map(|(c, _)| c.label()).collect();
            ex.error = Some(format!(
                "route {}: every upstream cools down ({}); next in {secs} s",
                plan.route,
                names.join(", ")
            ));
            return Err(Refusal {
                retry_after: Some(secs),
                ..Refusal::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "promptwall: every upstream of route {:?} is rate limited or failing; retry in {secs} s",
                        plan.route
                    ),
                )
            });
        }
        Ok(Routing::Planned {
            route: plan.route,
            candidates: plan.candidates,
            addressed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::exchange::{Client, Listener, Traffic};
    use crate::routing::config::RouteConfig;
    use crate::routing::{RoutingConfig, SystemClock};
    use promptwall_llm::ApiShape;

    fn addressed() -> Target {
        Target {
            provider: "anthropic".into(),
            uri: "https://api.anthropic.com/v1/messages".parse().unwrap(),
            host: "api.anthropic.com".into(),
            dial: None,
        }
    }

    fn router(targets: &[&str]) -> Router {
        let mut c = RoutingConfig::with_defaults();
        c.routes.push(RouteConfig {
            name: "haiku".into(),
            models: vec!["claude-*".into()],
            max_input_tokens: Some(4000),
            targets: targets.iter().map(|s| s.to_string()).collect(),
            ..RouteConfig::default()
        });
        Router::compile(&c, Arc::new(SystemClock)).unwrap()
    }

    fn exchange() -> Exchange {
        let mut ex = Exchange::new(Listener::Transparent, Client::default());
        ex.traffic = Traffic::Api(ApiShape::ANTHROPIC_MESSAGES);
        ex
    }

    #[tokio::test]
    async fn without_rules_a_request_goes_where_its_client_addressed_it() {
        let router = Router::compile(&RoutingConfig::default(), Arc::new(SystemClock)).unwrap();
        let mut ex = exchange();
        let body = Bytes::from_static(br#"{"model":"claude-x","messages":[]}"#);
        let chosen = Route { router: &router }
            .run(&mut ex, (addressed(), Some(body)))
            .await
            .unwrap();
        assert!(matches!(chosen, Routing::Direct(t) if t.uri == addressed().uri));
        assert_eq!(ex.target.unwrap().provider, "anthropic");
        assert!(ex.routing.is_none());
    }

    #[tokio::test]
    async fn a_matching_rule_plans_its_targets_and_the_row_names_the_route_and_requested_model() {
        let router = router(&["client:claude-haiku-4-5"]);
        let mut ex = exchange();
        let body = Bytes::from_static(br#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"#);
        let Routing::Planned { route, candidates, .. } = Route { router: &router }
            .run(&mut ex, (addressed(), Some(body)))
            .await
            .unwrap()
        else {
            panic!("planned")
        };
        assert_eq!(route, "haiku");
        assert_eq!(candidates[0].model.as_deref(), Some("claude-haiku-4-5"));
        let rec = ex.routing.unwrap();
        assert_eq!(rec.route, "haiku");
        assert_eq!(rec.requested_model.as_deref(), Some("claude-sonnet-4-5"));
    }

    #[tokio::test]
    async fn codex_history_compaction_and_embeddings_go_where_they_were_addressed() {
        let router = Router::compile(
            &RoutingConfig {
                routes: vec![RouteConfig {
                    name: "all-to-client-model".into(),
                    listeners: vec!["transparent".into()],
                    targets: vec!["client:other-model".into()],
                    ..RouteConfig::default()
                }],
                ..RoutingConfig::default()
            },
            Arc::new(SystemClock),
        )
        .unwrap();
        let body = Bytes::from_static(br#"{"model":"gpt-5-codex","input":[]}"#);
        for (shape, path) in [
            (ApiShape::OPENAI_RESPONSES, "/v1/responses/compact"),
            (ApiShape::OPENAI_EMBEDDINGS, "/v1/embeddings"),
        ] {
            let mut ex = exchange();
            ex.traffic = Traffic::Api(shape);
            let target = Target {
                provider: "openai".into(),
                uri: format!("https://api.openai.com{path}").parse().unwrap(),
                host: "api.openai.com".into(),
                dial: None,
            };
            let chosen = Route { router: &router }
                .run(&mut ex, (target, Some(body.clone())))
                .await
                .unwrap();
            assert!(matches!(chosen, Routing::Direct(_)), "{path}");
        }
        let mut ex = exchange();
        ex.traffic = Traffic::Api(ApiShape::OPENAI_RESPONSES);
        let target = Target {
            provider: "openai".into(),
            uri: "https://api.openai.com/v1/responses".parse().unwrap(),
            host: "api.openai.com".into(),
            dial: None,
        };
        let chosen = Route { router: &router }
            .run(&mut ex, (target, Some(body)))
            .await
            .unwrap();
        assert!(
            matches!(chosen, Routing::Planned { .. }),
            "a plain Responses call is routed"
        );
    }

    #[tokio::test]
    async fn a_streamed_uninspected_body_is_never_routed() {
        let router = router(&["client:claude-haiku-4-5"]);
        let mut ex = exchange();
        let chosen = Route { router: &router }
            .run(&mut ex, (addressed(), None))
            .await
            .unwrap();
        assert!(matches!(chosen, Routing::Direct(_)));
    }

    #[tokio::test]
    async fn when_every_target_cools_down_the_client_gets_a_429_with_the_wait() {
        let mut cfg = RoutingConfig::with_defaults();
        cfg.upstreams.insert(
            "org".into(),
            crate::routing::config::UpstreamConfig {
                kind: crate::routing::UpstreamKind::Anthropic,
                base_url: None,
                api: None,
                accounts: vec![],
            },
        );
        cfg.routes.push(RouteConfig {
            name: "r".into(),
            targets: vec!["org".into()],
            ..RouteConfig::default()
        });
        let router = Router::compile(&cfg, Arc::new(SystemClock)).unwrap();
        router.cooldowns.failed("org", Some(Duration::from_secs(30)));
        let mut ex = exchange();
        let body = Bytes::from_static(br#"{"model":"claude-x","messages":[]}"#);
        let refusal = Route { router: &router }
            .run(&mut ex, (addressed(), Some(body)))
            .await
            .unwrap_err();
        assert_eq!(refusal.status, StatusCode::TOO_MANY_REQUESTS);
        let secs = refusal.retry_after.unwrap();
        assert!((29..=30).contains(&secs), "{secs}");
        assert!(ex.error.unwrap().contains("cools down"));
    }
}
