//! Workloads for the policy benchmark: realistic Portcullis policy sets, the equivalent Cedar
//! policy sets, subjects and requests, and the check that both engines agree.
//!
//! Everything is generated from a fixed seed, so runs are comparable.
//!
//! # The Cedar translation
//!
//! Written the way Cedar's documentation models role-based access (principal, action, resource
//! with scope constraints in the policy head): the user is the principal `User::"u"`, a member
//! (child) of one `Role::"<role>"` entity per role; an OAuth scope is an action
//! `Action::"<scope>"`, a child of the action group `Action::"all"`; the app is the resource
//! `App::"<app>"`; the token's claims are the context record `claims`. One `permit` per policy, so
//! both engines hold the same number of policies:
//!
//! | Portcullis | Cedar |
//! |---|---|
//! | `userRoles contains R` | head `principal in Role::"R"` |
//! | `userRoles in [A, B, C]` | `when { principal in Role::"A" \|\| principal in Role::"B" \|\| .. }` |
//! | `scopes: [s]` | head `action == Action::"s"` |
//! | `scopes: [s, t, ..]` | head `action in [Action::"s", Action::"t", ..]` |
//! | `scopes: all` | head `action in Action::"all"` |
//! | (the policy's app) | its app's own `PolicySet`; in one store for many apps, head `resource == App::"<app>"` |
//! | `jwtClaims p equals v` | `context.claims has p && context.claims.p == v` |
//! | `jwtClaims p notEquals v` | `context.claims has p && context.claims.p != v` |
//! | `jwtClaims p in [v, w]` | `context.claims has p && (context.claims.p == v \|\| context.claims.p == w)` |
//!
//! (`has` is chained for nested paths.) Cedar evaluates the head before the `when` clause, and
//! `&&`/`||` short-circuit, so a policy for another role or scope costs an entity lookup and a
//! comparison. A multi-role policy cannot put its roles in the head (the head takes one entity);
//! it is not split, to keep the policy counts equal. Value lists are written as `||` chains rather
//! than set literals, which Cedar 4 rebuilds on every evaluation. The generated claims are always
//! strings when present, the domain on which these translations are exactly equivalent: Cedar's
//! `!=` would hold across types where Portcullis fails closed. Requested scopes are always scopes
//! the app offers, so `Action::"all"` (every scope) is exactly Portcullis's `all`.
//!
//! A decision on two requested scopes is two `is_authorized` calls: a Cedar request names one
//! action, and no single request is equivalent (an action that is a child of both scopes' actions
//! would be permitted by a policy granting either one, an *or* where the decision needs an *and*).
//!
//! The entities of a request are exactly what the policies read: the user (with its roles as
//! parents) and the requested scopes' actions (with `Action::"all"` as parent). No schema: Cedar
//! uses a schema to validate policies and inputs, not to evaluate faster, and all inputs here are
//! generated valid.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, Request};
use portcullis_policy::{Limits, PolicyDocument, PolicySet, Subject};
use serde_json::{Map, Value, json};

/// Scopes each app offers.
pub const SCOPES_PER_APP: usize = 24;
const ROLES: usize = 40;
const DEPARTMENTS: [&str; 12] = [
    "eng",
    "ops",
    "sales",
    "finance",
    "legal",
    "hr",
    "support",
    "marketing",
    "research",
    "security",
    "design",
    "data",
];
const TIERS: [&str; 4] = ["free", "pro", "business", "enterprise"];
const ACRS: [&str; 4] = ["0", "1", "2", "3"];

/// A small deterministic generator (splitmix64): the benchmark needs no randomness crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // Modulo bias is irrelevant at these sizes.
        usize::try_from(self.next_u64() % n.max(1) as u64).unwrap_or(0)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items
            .get(self.below(items.len()))
            .copied()
            .unwrap_or_default()
    }

    /// `k` distinct indices in `0..n`.
    fn distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(k);
        while out.len() < k.min(n) {
            let i = self.below(n);
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }
}

fn role(i: usize) -> String {
    format!("role-{i:02}")
}

fn scope(i: usize) -> String {
    format!("scope.{i:02}")
}

/// One app's policies, in both engines' terms.
#[derive(Debug, Clone)]
pub struct App {
    /// The app's id.
    pub id: String,
    /// The app's scopes.
    pub offered: Vec<String>,
    /// Its Portcullis policies, `(id, document)`.
    pub policies: Vec<(String, PolicyDocument)>,
    /// Its Cedar policies, as Cedar source, each scoped to the app in its head
    /// (`resource == App::"<app>"`): for a store holding many apps' policies.
    pub cedar: String,
    /// The same without the app constraint (`resource` unconstrained): for the app's own
    /// `PolicySet`, where every request is on the app, so the constraint could only cost.
    pub cedar_slice: String,
}

impl App {
    /// Generates an app with `n` policies.
    ///
    /// # Panics
    /// Never for generated input: the documents are valid by construction.
    #[must_use]
    pub fn generate(rng: &mut Rng, id: &str, n: usize) -> Self {
        let offered: Vec<String> = (0..SCOPES_PER_APP).map(scope).collect();
        let mut policies = Vec::with_capacity(n);
        let mut cedar = String::new();
        let mut cedar_slice = String::new();
        for p in 0..n {
            let (doc, [scoped, sliced]) = generate_policy(rng, id, p);
            policies.push((format!("{id}-pol-{p:04}"), doc));
            cedar.push_str(&scoped);
            cedar_slice.push_str(&sliced);
        }
        Self {
            id: id.to_owned(),
            offered,
            policies,
            cedar,
            cedar_slice,
        }
    }

    /// Compiles the Portcullis set.
    ///
    /// # Errors
    /// When a generated document is invalid (a bug in the generator).
    pub fn compile(&self) -> Result<PolicySet, String> {
        PolicySet::compile(&self.offered, self.policies.clone(), &Limits::default())
            .map_err(|e| e.to_string())
    }
}

/// A policy: the Portcullis document, and the Cedar policy scoped to its app and unscoped.
fn generate_policy(rng: &mut Rng, app: &str, index: usize) -> (PolicyDocument, [String; 2]) {
    // The random draws, and so the Portcullis policies, are the same as before the Cedar side was
    // rewritten: only the Cedar text differs.
    let mut conditions = Vec::new();
    let mut cedar_conditions = Vec::new();
    // First a role condition: policies are role-scoped, as administrators write them.
    let principal = if rng.chance(70) {
        let r = role(rng.below(ROLES));
        conditions.push(json!({"source": "userRoles", "operator": "contains", "value": r}));
        format!("principal in Role::{}", quote(&r))
    } else {
        let rs: Vec<String> = rng.distinct(ROLES, 3).into_iter().map(role).collect();
        conditions.push(json!({"source": "userRoles", "operator": "in", "value": rs}));
        let any: Vec<String> = rs
            .iter()
            .map(|r| format!("principal in Role::{}", quote(r)))
            .collect();
        cedar_conditions.push(format!("({})", any.join(" || ")));
        "principal".to_owned()
    };
    // Then zero to two claim conditions.
    for _ in 0..rng.below(3) {
        let (path, pool): (&str, &[&str]) = match rng.below(3) {
            0 => ("department", &DEPARTMENTS),
            1 => ("org.tier", &TIERS),
            _ => ("acr", &ACRS),
        };
        let access = format!("context.claims.{path}");
        let guard = has_chain(path);
        match rng.below(3) {
            0 => {
                let v = rng.pick(pool);
                conditions.push(
                    json!({"source": "jwtClaims", "claim": path, "operator": "equals", "value": v}),
                );
                cedar_conditions.push(format!("({guard} && {access} == {})", quote(v)));
            }
            1 => {
                let vs: Vec<String> = rng
                    .distinct(pool.len(), 2)
                    .into_iter()
                    .filter_map(|i| pool.get(i).map(|s| (*s).to_owned()))
                    .collect();
                conditions.push(
                    json!({"source": "jwtClaims", "claim": path, "operator": "in", "value": vs}),
                );
                let any: Vec<String> = vs
                    .iter()
                    .map(|v| format!("{access} == {}", quote(v)))
                    .collect();
                cedar_conditions.push(format!("({guard} && ({}))", any.join(" || ")));
            }
            _ => {
                let v = rng.pick(pool);
                conditions.push(json!({"source": "jwtClaims", "claim": path, "operator": "notEquals", "value": v}));
                cedar_conditions.push(format!("({guard} && {access} != {})", quote(v)));
            }
        }
    }
    let (scopes, action) = if rng.chance(3) {
        (json!("all"), format!("action in {ALL_SCOPES}"))
    } else {
        let names: Vec<String> = rng
            .distinct(SCOPES_PER_APP, 1 + rng.clone().below(4))
            .into_iter()
            .map(scope)
            .collect();
        let action = match names.as_slice() {
            [one] => format!("action == {}", action_uid(one)),
            many => {
                let uids: Vec<String> = many.iter().map(|s| action_uid(s)).collect();
                format!("action in [{}]", uids.join(", "))
            }
        };
        (json!(names), action)
    };
    let doc = json!({
        "name": format!("{app} policy {index}"),
        "conditions": conditions,
        "scopes": scopes,
    });
    let doc = PolicyDocument::from_json(&doc).unwrap_or_else(|e| unreachable_doc(&e.to_string()));
    let mut when = String::new();
    if !cedar_conditions.is_empty() {
        let _ = write!(when, " when {{ {} }}", cedar_conditions.join(" && "));
    }
    let scoped = format!(
        "permit({principal}, {action}, resource == App::{}){when};\n",
        quote(app)
    );
    let sliced = format!("permit({principal}, {action}, resource){when};\n");
    (doc, [scoped, sliced])
}

/// The action group every scope's action belongs to: Portcullis's `all`.
const ALL_SCOPES: &str = "Action::\"all\"";

fn action_uid(scope: &str) -> String {
    format!("Action::{}", quote(scope))
}

#[expect(
    clippy::panic,
    reason = "a generator bug must stop the benchmark, not skew it"
)]
fn unreachable_doc(problem: &str) -> PolicyDocument {
    panic!("the generator produced an invalid policy: {problem}")
}

fn has_chain(path: &str) -> String {
    let mut prefix = String::from("context.claims");
    let mut parts = Vec::new();
    for segment in path.split('.') {
        parts.push(format!("{prefix} has {segment}"));
        prefix = format!("{prefix}.{segment}");
    }
    parts.join(" && ")
}

fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

/// A user: roles and token claims.
#[derive(Debug, Clone)]
pub struct Person {
    /// The user's roles.
    pub roles: Vec<String>,
    /// The inbound token's claims.
    pub claims: Map<String, Value>,
}

impl Person {
    /// A generated user: two roles (or, one time in ten, only `guest`), a department (absent one time in twenty), a tier, an acr.
    #[must_use]
    pub fn generate(rng: &mut Rng) -> Self {
        // One user in ten holds no role any policy mentions.
        let roles = if rng.chance(10) {
            vec!["guest".to_owned()]
        } else {
            rng.distinct(ROLES, 2).into_iter().map(role).collect()
        };
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(format!("user-{}", rng.below(100_000))));
        claims.insert("iss".into(), json!("https://portcullis.example"));
        claims.insert("aud".into(), json!("https://mcp.example/server"));
        claims.insert("exp".into(), json!(1_900_000_000));
        if !rng.chance(5) {
            claims.insert("department".into(), json!(rng.pick(&DEPARTMENTS)));
        }
        claims.insert(
            "org".into(),
            json!({"id": "org-1", "tier": rng.pick(&TIERS)}),
        );
        claims.insert("acr".into(), json!(rng.pick(&ACRS)));
        Self { roles, claims }
    }

    /// The Portcullis subject.
    #[must_use]
    pub fn subject(&self) -> Subject<'_> {
        Subject::new(&self.roles, &self.claims)
    }
}

/// Two requested scopes of an app.
#[must_use]
pub fn generate_request(rng: &mut Rng) -> [String; 2] {
    let picked = rng.distinct(SCOPES_PER_APP, 2);
    [
        scope(picked.first().copied().unwrap_or(0)),
        scope(picked.get(1).copied().unwrap_or(1)),
    ]
}

/// One prepared request in Cedar's terms: a `Request` per requested scope, and the entities, all
/// built once, before any timing.
#[derive(Debug)]
pub struct CedarRequest {
    /// One request per requested scope.
    pub requests: Vec<Request>,
    /// What the policies read: the principal (with its roles as parents) and the requested
    /// scopes' actions (with the `all` group as parent).
    pub entities: Entities,
}

impl CedarRequest {
    /// Builds the Cedar request for `person` asking `app` for `scopes`.
    ///
    /// # Errors
    /// When Cedar rejects the generated input (a bug in the generator).
    pub fn new(app: &str, person: &Person, scopes: &[String]) -> Result<Self, String> {
        let principal = uid("User", "u")?;
        let resource = uid("App", app)?;
        let context = Context::from_json_value(json!({"claims": person.claims}), None)
            .map_err(|e| e.to_string())?;
        let roles: Vec<Value> = person
            .roles
            .iter()
            .map(|r| json!({"type": "Role", "id": r}))
            .collect();
        let mut entities =
            vec![json!({"uid": {"type": "User", "id": "u"}, "attrs": {}, "parents": roles})];
        let mut requests = Vec::with_capacity(scopes.len());
        for (i, s) in scopes.iter().enumerate() {
            if !scopes.get(..i).unwrap_or_default().contains(s) {
                entities.push(json!({"uid": {"type": "Action", "id": s}, "attrs": {}, "parents": [{"type": "Action", "id": "all"}]}));
            }
            let request = Request::new(
                principal.clone(),
                uid("Action", s)?,
                resource.clone(),
                context.clone(),
                None,
            )
            .map_err(|e| e.to_string())?;
            requests.push(request);
        }
        let entities =
            Entities::from_json_value(Value::Array(entities), None).map_err(|e| e.to_string())?;
        Ok(Self { requests, entities })
    }

    /// The number of policies that failed to evaluate (Cedar skips them), over every scope.
    #[must_use]
    pub fn errors(&self, authorizer: &Authorizer, policies: &cedar_policy::PolicySet) -> usize {
        self.requests
            .iter()
            .map(|request| {
                authorizer
                    .is_authorized(request, policies, &self.entities)
                    .diagnostics()
                    .errors()
                    .count()
            })
            .sum()
    }

    /// Cedar's decision: allowed when every requested scope is permitted. Every scope is
    /// authorized, without stopping at the first denial: the cost measured is the sum of the calls.
    #[must_use]
    pub fn allowed(&self, authorizer: &Authorizer, policies: &cedar_policy::PolicySet) -> bool {
        self.requests.iter().fold(true, |all, request| {
            let permitted = authorizer
                .is_authorized(request, policies, &self.entities)
                .decision()
                == cedar_policy::Decision::Allow;
            all & permitted
        })
    }
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    EntityUid::from_str(&format!("{kind}::{}", quote(id))).map_err(|e| e.to_string())
}

/// Parses Cedar source.
///
/// # Errors
/// When the generated source does not parse (a bug in the generator).
pub fn cedar_policies(source: &str) -> Result<cedar_policy::PolicySet, String> {
    cedar_policy::PolicySet::from_str(source).map_err(|e| e.to_string())
}

/// One Cedar `PolicySet` per app: the slice of the policies that can apply to a request on that
/// app, which is how Cedar expects a store serving many resources to call the authorizer (Cedar
/// evaluates every policy it is given; selecting them is the application's job).
///
/// # Errors
/// When the generated source does not parse (a bug in the generator).
pub fn cedar_per_app(apps: &[App]) -> Result<HashMap<String, cedar_policy::PolicySet>, String> {
    apps.iter()
        .map(|app| Ok((app.id.clone(), cedar_policies(&app.cedar_slice)?)))
        .collect()
}

/// Agreement of the two engines over a sample.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// Cases checked.
    pub checked: usize,
    /// Cases both allowed.
    pub allowed: usize,
    /// Cases where the engines disagreed.
    pub disagreements: usize,
    /// Cedar policy evaluation errors seen (there should be none: an erroring policy is skipped,
    /// which would make Cedar's work, and the comparison, different).
    pub cedar_errors: usize,
}

/// Checks that Portcullis and Cedar decide the same on `samples` generated subjects and requests
/// against the apps in `sets` (Portcullis) and the Cedar policies `cedar` gives for an app (its
/// own slice, or one store for all of them).
///
/// # Errors
/// When a request cannot be built or an app is missing.
pub fn check_agreement<'c>(
    rng: &mut Rng,
    apps: &[App],
    sets: &HashMap<String, PolicySet>,
    cedar: impl Fn(&str) -> Option<&'c cedar_policy::PolicySet>,
    samples: usize,
) -> Result<Agreement, String> {
    let authorizer = Authorizer::new();
    let mut agreement = Agreement::default();
    for _ in 0..samples {
        let app = apps.get(rng.below(apps.len())).ok_or("no app")?;
        let person = Person::generate(rng);
        let scopes = request_for(rng, app, &person, sets)?;
        let set = sets.get(&app.id).ok_or("missing app")?;
        let requested: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let ours = set.decide(&person.subject(), &requested).allowed();
        let request = CedarRequest::new(&app.id, &person, &scopes)?;
        let cedar = cedar(&app.id).ok_or("missing Cedar app")?;
        let theirs = request.allowed(&authorizer, cedar);
        agreement.cedar_errors += request.errors(&authorizer, cedar);
        agreement.checked += 1;
        agreement.allowed += usize::from(ours && theirs);
        agreement.disagreements += usize::from(ours != theirs);
    }
    Ok(agreement)
}

/// Two scopes to request: half the time two scopes some matching policy grants (so that
/// samples include allows), otherwise two random scopes.
///
/// # Errors
/// When the app is missing from `sets`.
pub fn request_for(
    rng: &mut Rng,
    app: &App,
    person: &Person,
    sets: &HashMap<String, PolicySet>,
) -> Result<[String; 2], String> {
    let random = generate_request(rng);
    if rng.chance(50) {
        return Ok(random);
    }
    let set = sets.get(&app.id).ok_or("missing app")?;
    let decision = set.decide(&person.subject(), &[]);
    let granted: Vec<String> = match decision.allowed_scopes(set) {
        portcullis_policy::AllowedScopes::All => return Ok(random),
        portcullis_policy::AllowedScopes::List(list) => {
            list.into_iter().map(str::to_owned).collect()
        }
    };
    Ok(match granted.as_slice() {
        [] => random,
        [one] => [one.clone(), one.clone()],
        many => {
            let i = rng.distinct(many.len(), 2);
            let pick = |k: usize| {
                i.get(k)
                    .and_then(|j| many.get(*j))
                    .cloned()
                    .unwrap_or_default()
            };
            [pick(0), pick(1)]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single_app(
        n: usize,
    ) -> (
        Vec<App>,
        HashMap<String, PolicySet>,
        cedar_policy::PolicySet,
    ) {
        let mut rng = Rng::new(7);
        let app = App::generate(&mut rng, "app-0000", n);
        let set = app.compile().unwrap();
        let cedar = cedar_policies(&app.cedar_slice).unwrap();
        let sets = HashMap::from([(app.id.clone(), set)]);
        (vec![app], sets, cedar)
    }

    #[test]
    fn engines_agree_on_every_size() {
        for n in [10, 100, 1000] {
            let (apps, sets, cedar) = single_app(n);
            assert_eq!(cedar.policies().count(), n);
            let agreement =
                check_agreement(&mut Rng::new(99), &apps, &sets, |_| Some(&cedar), 200).unwrap();
            assert_eq!(agreement.disagreements, 0, "{n} policies: {agreement:?}");
            assert_eq!(agreement.cedar_errors, 0, "{n} policies: {agreement:?}");
            assert!(
                agreement.allowed > 0 && agreement.allowed < agreement.checked,
                "{n}: {agreement:?}"
            );
        }
    }

    #[test]
    fn engines_agree_across_many_apps() {
        let mut rng = Rng::new(11);
        let apps: Vec<App> = (0..50)
            .map(|a| App::generate(&mut rng, &format!("app-{a:04}"), 10))
            .collect();
        let sets: HashMap<String, PolicySet> = apps
            .iter()
            .map(|a| (a.id.clone(), a.compile().unwrap()))
            .collect();
        // Per-app slices, and one store holding every app's policies: both must agree.
        let per_app = cedar_per_app(&apps).unwrap();
        let source: String = apps.iter().map(|a| a.cedar.as_str()).collect();
        let store = cedar_policies(&source).unwrap();
        for (name, agreement) in [
            (
                "per app",
                check_agreement(&mut rng.clone(), &apps, &sets, |a| per_app.get(a), 300).unwrap(),
            ),
            (
                "one store",
                check_agreement(&mut rng.clone(), &apps, &sets, |_| Some(&store), 300).unwrap(),
            ),
        ] {
            assert_eq!(agreement.disagreements, 0, "{name}: {agreement:?}");
            assert_eq!(agreement.cedar_errors, 0, "{name}: {agreement:?}");
            assert!(agreement.allowed > 0, "{name}: {agreement:?}");
        }
    }

    #[test]
    fn a_broken_translation_is_caught() {
        // The check must be able to fail: drop every `when` condition from the Cedar side.
        let (apps, sets, _) = single_app(100);
        let loose: String = apps[0]
            .cedar_slice
            .lines()
            .map(|line| {
                line.split(" when ")
                    .next()
                    .unwrap_or(line)
                    .trim_end_matches(';')
                    .to_owned()
                    + ";\n"
            })
            .collect();
        let cedar = cedar_policies(&loose).unwrap();
        let agreement =
            check_agreement(&mut Rng::new(5), &apps, &sets, |_| Some(&cedar), 200).unwrap();
        assert!(agreement.disagreements > 0);
    }

    #[test]
    fn cedar_policies_scope_in_the_head() {
        let (apps, _, _) = single_app(100);
        let scoped = cedar_policies(&apps[0].cedar).unwrap();
        for policy in scoped.policies() {
            let text = policy.to_string();
            assert!(text.contains("resource == App::\"app-0000\""), "{text}");
            assert!(!text.contains("action,"), "{text}");
        }
        let sliced = cedar_policies(&apps[0].cedar_slice).unwrap();
        assert_eq!(sliced.policies().count(), 100);
        assert!(sliced.policies().all(|p| !p.to_string().contains("App::")));
        assert!(apps[0].cedar.contains("permit(principal in Role::"));
    }

    #[test]
    fn subjects_match_a_small_fraction_of_policies() {
        let (apps, sets, _) = single_app(1000);
        let set = &sets[&apps[0].id];
        let mut rng = Rng::new(3);
        let mut matched = 0;
        for _ in 0..100 {
            let person = Person::generate(&mut rng);
            let decision = set.decide(&person.subject(), &[]);
            matched += decision.policies(set).filter(|v| v.matched).count();
        }
        let fraction = matched as f64 / 100_000.0;
        assert!(fraction > 0.005 && fraction < 0.1, "{fraction}");
    }
}
