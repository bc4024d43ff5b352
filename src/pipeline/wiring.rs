//! What each stage is handed for one request: its own settings out of the running generation,
//! the gateway's long-lived state it may touch (buckets, nonces, freezes, events), and the
//! request facts it reads. [`super::run`] is then one call per stage; the stages themselves
//! never see the policy or the gateway.

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http_body::Body;

use super::BoxError;
use crate::context::{ConnInfo, RequestContext};
use crate::gateway::release::RouteRelease;
use crate::gateway::{Gateway, Live};
use crate::policy::Route;
use crate::stage::authn::{self, Principal};
use crate::stage::canary::{self, CanaryGuard, Choice};
use crate::stage::ip_allow;
use crate::stage::owners::AnswerCheck;
use crate::stage::proxy::{self, HeaderFacts, Outgoing, UpstreamRequest};
use crate::stage::rate_limit::{FailedAuthBucket, RedisBuckets};
use crate::stage::response;
use crate::stage::signature::{self, BodyCoverage, Sender, SignedRequest, Stores, Verified};
use crate::stage::stale;
use crate::stage::validate::body::ValidatedBody;
use crate::vocab::address::is_trusted;
use crate::vocab::body::GatewayBody;
use crate::vocab::error::GatewayError;
use crate::vocab::query::RawQuery;
use crate::vocab::rate_limit_status::RateLimitStatus;
use crate::vocab::shared_store::SharedStore;

/// One routed request's view of the gateway: everything its later stages are handed.
pub(super) struct Wire<'a> {
    gateway: &'a Gateway,
    live: &'a Live,
    parts: &'a Parts,
    route: &'a Route,
    release: &'a RouteRelease,
    conn: Arc<ConnInfo>,
    redis: Option<Arc<RedisBuckets>>,
    allowance: FailedAuthBucket<'a>,
}

impl<'a> Wire<'a> {
    /// The wiring of `parts`, matched to the policy's route number `route`, from the caller of
    /// `ctx`.
    pub(super) fn new(
        (gateway, live): (&'a Gateway, &'a Live),
        parts: &'a Parts,
        route: usize,
        ctx: &RequestContext,
    ) -> Self {
        Self {
            gateway,
            live,
            parts,
            route: &live.policy.routes[route],
            release: &live.releases[route],
            conn: ctx.conn.clone(),
            redis: gateway.limiter.redis(),
            allowance: FailedAuthBucket {
                limiter: &gateway.limiter,
                settings: &live.policy.rate_limits,
                ip: ctx.client_ip,
            },
        }
    }

    fn store(&self) -> Option<&SharedStore> {
        self.redis.as_deref().map(RedisBuckets::store)
    }

    /// Stage 5: the credential.
    pub(super) async fn authenticate(
        &self,
        query: &RawQuery,
    ) -> Result<Arc<Principal>, GatewayError> {
        let policy = &self.live.policy;
        let settings = authn::Settings {
            auth: &policy.auth,
            roles: &policy.roles,
            scopes: &policy.scopes,
            verifier: self.live.jwt.as_ref(),
        };
        let declared = |name: &str| self.route.params.query.iter().any(|s| *s.name == *name);
        let presented = authn::Presented {
            headers: &self.parts.headers,
            query: (self.parts.uri.query().unwrap_or(""), query),
            declared: &declared,
            client_subject: self.conn.client_subject.as_ref(),
        };
        authn::stage(settings, presented, &self.allowance).await
    }

    /// Stage 5, after the credential: a frozen principal, then the caller's and route's IP lists.
    pub(super) async fn admit_caller(&self, principal: &Principal) -> Result<(), GatewayError> {
        let abuse = &self.gateway.abuse;
        abuse.refuse_frozen_principal(principal.kind, &principal.id)?;
        let violation = ip_allow::Violation {
            guard: abuse,
            settings: &self.live.policy.abuse,
            store: self.store(),
            events: &self.gateway.events,
            may_freeze: !self
                .live
                .policy
                .signatures
                .keys
                .contains_key(&(principal.kind, principal.id.clone())),
        };
        let route = (&self.route.id, self.route.allow_ips.as_deref());
        ip_allow::caller_stage(principal, route, self.allowance.ip, violation).await
    }

    /// Stage 5b: the signature over the request as received.
    pub(super) async fn check_signature(
        &self,
        principal: &Principal,
        end_stream: bool,
    ) -> Result<Option<Verified>, GatewayError> {
        let parts = self.parts;
        let request = SignedRequest {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            tls: self.conn.tls_version.is_some(),
            body: BodyCoverage::of(
                signature::has_body(&parts.headers, end_stream),
                self.route.body.as_ref().map_or(0, |b| b.kinds.len()),
            ),
        };
        let sender = Sender {
            principal,
            client_ip: self.allowance.ip,
            route: &self.route.id,
        };
        let stores = Stores {
            local: &self.gateway.nonces,
            redis: self.store(),
            fleet: &self.gateway.fleet_ttl,
            events: &self.gateway.events,
        };
        let settings = &self.live.policy.signatures;
        let requires = self.route.require_signature;
        signature::stage(
            settings,
            requires,
            &request,
            sender,
            stores,
            &self.allowance,
        )
        .await
    }

    /// Stage 7's body, within its limits and against the signed digest; `signed` is the
    /// context's flag, cleared when the digest does not match.
    pub(super) async fn read_body<B>(
        &self,
        body: B,
        verified: Option<&Verified>,
        signed: &mut bool,
    ) -> Result<Option<ValidatedBody>, GatewayError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let digest = verified.and_then(|v| v.digest.as_ref());
        let limits = (
            self.route.body.as_ref(),
            self.live.policy.server.max_request_body,
        );
        let headers = &self.parts.headers;
        crate::stage::validate::body::stage(headers, body, limits, digest, signed, &self.allowance)
            .await
    }

    /// Stage 8: the principal's and the route's buckets.
    pub(super) async fn rate_limit(
        &self,
        principal: &Principal,
    ) -> Result<Option<RateLimitStatus>, GatewayError> {
        let (settings, bucket) = (
            &self.live.policy.rate_limits,
            self.route.rate_limit.as_ref(),
        );
        let limiter = &self.gateway.limiter;
        limiter
            .check(settings, bucket, principal.kind, &principal.id)
            .await
    }

    /// Stage 9's upstream choice for `principal`, and the answer's place in the stale store.
    pub(super) fn choose(
        &self,
        principal: &'a Principal,
        view: Option<usize>,
        target: &(String, String),
    ) -> Sending<'a> {
        let (route, guard) = (self.route, self.release.guard.as_deref());
        let upstream = (route.upstream, route.canary.as_ref());
        let method = &self.parts.method;
        Sending {
            principal,
            view,
            choice: canary::choose(upstream, guard, &route.id, &principal.id),
            guard,
            kept: stale::Kept::new(
                self.release.stale.as_deref(),
                principal,
                view,
                method,
                target,
            ),
        }
    }

    /// Stage 10's request to the chosen upstream.
    pub(super) fn upstream_request(
        &self,
        sending: &Sending<'_>,
        target: &(String, String),
        body: Option<ValidatedBody>,
        request_id: &str,
    ) -> Result<UpstreamRequest, GatewayError> {
        let peer = self.conn.peer.ip();
        let (_, settings) = self.live.policy.upstream_of(sending.choice.target);
        let headers = HeaderFacts {
            client_headers: &self.parts.headers,
            peer,
            peer_trusted: is_trusted(peer, &self.live.policy.server.trusted_proxies),
            https: self.conn.tls_version.is_some(),
            request_id,
            principal: sending.principal,
            forward_identity: false,
            body: None,
            // A 304 would answer without a body to check: no conditional request where the
            // answer is owner-checked (an existing id would tell itself apart from a missing one).
            conditional: self.route.views.is_empty() && self.route.answer.owners.is_empty(),
            json_answer: !self.route.views.is_empty()
                || !self.route.answer.owners.is_empty()
                || self.route.answer.counts,
        };
        let method = &self.parts.method;
        proxy::request(
            settings,
            Outgoing {
                method,
                target,
                body,
                headers,
            },
        )
    }

    /// Stages 10 and 11: sends `request`, shapes the answer for the caller (view, owners,
    /// count), tells the canary guard what the caller got, and lets a kept answer cover an
    /// upstream failure. The upstream's facts go to `ctx` for the record, whatever the outcome.
    pub(super) async fn exchange(
        &self,
        ctx: &mut RequestContext,
        sending: Sending<'_>,
        request: UpstreamRequest,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let (name, settings) = self.live.policy.upstream_of(sending.choice.target);
        let runtime = self.live.upstream_runtime(sending.choice.target);
        let mut kept = sending.kept;
        let sent = runtime.send(settings, request).await;
        if let Ok((upstream, upstream_time)) = &sent {
            ctx.upstream_status = Some(upstream.status().as_u16());
            ctx.upstream_time = Some(*upstream_time);
            ctx.upstream_name = Some(name.clone());
            kept.answered(upstream.headers());
        }
        let answer = AnswerCheck::new(&self.route.answer, sending.principal);
        let view = sending.view.map(|i| &self.route.views[i]);
        let route = (&*self.route.id, settings);
        let shaped = response::stage(sent, view, route, (&answer, &mut ctx.records)).await;
        if let Some(guard) = sending.guard {
            guard.record_outcome(sending.choice.side, &shaped, ctx.upstream_time);
        }
        let (response, from) = kept.settle(shaped, settings.timeout).await?;
        ctx.served = Some(from.into());
        Ok(response)
    }
}

/// Where one request goes after stage 9, and what its answer is checked and kept by.
pub(super) struct Sending<'a> {
    /// The caller.
    pub principal: &'a Principal,
    /// The caller's view (stage 6), an index into the route's views.
    pub view: Option<usize>,
    /// The upstream chosen (stage 9).
    pub choice: Choice,
    /// The route's canary guard, told what the caller got.
    pub guard: Option<&'a CanaryGuard>,
    /// The route's stale-if-error place for this request.
    pub kept: stale::Kept<'a>,
}
