//! Portcullis's policy engine against `cedar-policy` on equivalent policy sets.
//!
//! Versions: `cedar-policy` 4.14.1 (resolved from `"4.14"` in Cargo.lock, default features),
//! `criterion` 0.8; the `bench` profile (release, `debug = "line-tables-only"`).
//!
//! Sizes: 10, 100 and 1,000 policies on the requested app; and 10,000 policies over 1,000 apps
//! (10 per app). A decision is on two requested scopes of one app.
//!
//! Built once, before timing: both engines' policy sets (Portcullis compiled, Cedar parsed); one
//! `Authorizer`; 64 prepared cases, each a subject with, for Cedar, its `Entities` (exactly what the
//! policies read: the user with its roles as parents, the requested scopes' actions) and one
//! `Request` per requested scope holding the prebuilt `Context` of the token's claims. No schema
//! (Cedar uses one to validate, not to evaluate faster). The timed loop takes the next prepared
//! case and decides it: Portcullis `PolicySet::decide` once; Cedar `Authorizer::is_authorized` once
//! per requested scope on the prebuilt request and entities, borrowed (nothing parsed, built,
//! validated or cloned by the harness), both calls always made, the decision being their *and*.
//! Two calls is the fair mapping: a Cedar request names one action, and a single action standing
//! for both scopes would be permitted by a policy granting either (an *or*, not an *and*).
//!
//! Cedar's policies are written as its documentation models role-based access, with scope
//! constraints in the head so that a policy for another role, scope or app is rejected there
//! before its `when` clause: `permit(principal in Role::"r", action in [Action::"s", ..],
//! resource) when { <claim conditions> }` (see the crate docs for the full translation). Cedar
//! evaluates every policy in the set it is given, selecting the relevant ones being the caller's
//! job (Portcullis, likewise, evaluates every policy of the app's set: neither gets a role index);
//! so Cedar gets the same slicing as Portcullis: one `PolicySet` per app, in a `HashMap` looked up
//! inside the timed loop for many apps, for both engines. In its own app's set a policy needs no
//! app constraint (`resource` is left unconstrained: `resource == App::"a"` would add about 10%
//! to each call and decide nothing). The same 10,000 policies in one Cedar store, each scoped to
//! its app in the head, are measured too, as `cedar/10000-over-1000-apps-one-store`.
//!
//! Before anything is timed, the two engines are checked to decide identically on 500 sampled
//! requests per workload (every Cedar variant measured), with no Cedar evaluation error.
//!
//! `cedar-minimal/10/*` is a minimal harness timing one `is_authorized` call on the 10-policy set,
//! straight on prebuilt values: twice its figure should match `cedar/10`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark harness"
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use cedar_policy::Authorizer;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main};
use portcullis_bench::{
    App, CedarRequest, Person, Rng, cedar_per_app, cedar_policies, check_agreement, request_for,
};
use portcullis_policy::PolicySet;

/// Prepared requests cycled through inside the timed loop, so that no single path is learned.
const ROTATION: usize = 64;
/// Subjects checked for agreement before timing.
const AGREEMENT_SAMPLES: usize = 500;

struct Prepared {
    app: String,
    person: Person,
    scopes: [String; 2],
    cedar: CedarRequest,
}

struct Workload {
    label: String,
    sets: HashMap<String, PolicySet>,
    /// Cedar's policies, one set per app.
    cedar: HashMap<String, cedar_policy::PolicySet>,
    /// With many apps, also all of them in one Cedar set.
    store: Option<cedar_policy::PolicySet>,
    prepared: Vec<Prepared>,
}

fn agree<'c>(
    label: &str,
    rng: &mut Rng,
    apps: &[App],
    sets: &HashMap<String, PolicySet>,
    cedar: impl Fn(&str) -> Option<&'c cedar_policy::PolicySet>,
) {
    let agreement = check_agreement(rng, apps, sets, cedar, AGREEMENT_SAMPLES).unwrap();
    assert_eq!(
        agreement.disagreements, 0,
        "{label}: the engines disagree, so the comparison would be meaningless: {agreement:?}"
    );
    assert_eq!(
        agreement.cedar_errors, 0,
        "{label}: Cedar policies fail to evaluate, so Cedar would do different work: {agreement:?}"
    );
    eprintln!(
        "{label}: engines agree on {} of {} sampled requests ({} allowed)",
        agreement.checked - agreement.disagreements,
        agreement.checked,
        agreement.allowed
    );
}

fn workload(label: &str, apps: Vec<App>, seed: u64) -> Workload {
    let sets: HashMap<String, PolicySet> = apps
        .iter()
        .map(|app| (app.id.clone(), app.compile().unwrap()))
        .collect();
    let cedar = cedar_per_app(&apps).unwrap();
    let mut rng = Rng::new(seed);
    let store = (apps.len() > 1).then(|| {
        let source: String = apps.iter().map(|app| app.cedar.as_str()).collect();
        let store = cedar_policies(&source).unwrap();
        let label = format!("{label} (one Cedar store)");
        agree(&label, &mut rng.clone(), &apps, &sets, |_| Some(&store));
        store
    });
    agree(label, &mut rng, &apps, &sets, |app| cedar.get(app));

    let prepared = (0..ROTATION)
        .map(|_| {
            let app = &apps[rng.below(apps.len())];
            let person = Person::generate(&mut rng);
            let scopes = request_for(&mut rng, app, &person, &sets).unwrap();
            let cedar = CedarRequest::new(&app.id, &person, &scopes).unwrap();
            Prepared {
                app: app.id.clone(),
                person,
                scopes,
                cedar,
            }
        })
        .collect();
    Workload {
        label: label.to_owned(),
        sets,
        cedar,
        store,
        prepared,
    }
}

/// Where Portcullis finds the app's set: looked up per decision among many apps, or given.
enum Lookup {
    PerDecision,
    Given,
}

fn run(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    w: &Workload,
    lookup: &Lookup,
) {
    bench_portcullis(group, w, lookup, &format!("portcullis/{}", w.label));
    bench_cedar(group, w, lookup);
}

fn bench_portcullis(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    w: &Workload,
    lookup: &Lookup,
    name: &str,
) {
    group.sample_size(100);
    group.sampling_mode(SamplingMode::Auto);
    group.measurement_time(Duration::from_secs(3));
    let only = w.sets.values().next().unwrap();
    group.bench_function(name, |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ROTATION;
            let p = &w.prepared[i];
            let set = match lookup {
                // Inside the timed loop, as the server does with one set per app.
                Lookup::PerDecision => w.sets.get(black_box(p.app.as_str())).unwrap(),
                Lookup::Given => black_box(only),
            };
            let requested = [p.scopes[0].as_str(), p.scopes[1].as_str()];
            black_box(
                set.decide(&p.person.subject(), black_box(&requested))
                    .allowed(),
            )
        });
    });
}

fn bench_cedar(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    w: &Workload,
    lookup: &Lookup,
) {
    let authorizer = Authorizer::new();
    group.sample_size(100);
    group.sampling_mode(SamplingMode::Auto);
    group.measurement_time(Duration::from_secs(3));
    let only = w.cedar.values().next().unwrap();
    group.bench_function(format!("cedar/{}", w.label), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ROTATION;
            let p = &w.prepared[i];
            let policies = match lookup {
                // The app's slice, looked up as Portcullis's set is.
                Lookup::PerDecision => w.cedar.get(black_box(p.app.as_str())).unwrap(),
                Lookup::Given => black_box(only),
            };
            black_box(p.cedar.allowed(&authorizer, policies))
        });
    });
    if let Some(store) = &w.store {
        // Every app's policies in one set: Cedar evaluates all of them on every call.
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.measurement_time(Duration::from_secs(5));
        group.bench_function(format!("cedar/{}-one-store", w.label), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % ROTATION;
                let p = &w.prepared[i];
                black_box(p.cedar.allowed(&authorizer, black_box(store)))
            });
        });
    }
}

/// A minimal harness for Cedar alone, to check the figures above against: the 10-policy set, and
/// `is_authorized` called directly on prebuilt requests and entities, one call per iteration.
fn cedar_minimal(c: &mut Criterion) {
    let mut group = c.benchmark_group("cedar-minimal");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let w = ten_policies();
    let policies = w.cedar.values().next().unwrap();
    let authorizer = Authorizer::new();
    // Every prepared (request, entities) pair of the `cedar/10` workload, flattened.
    let calls: Vec<(&cedar_policy::Request, &cedar_policy::Entities)> = w
        .prepared
        .iter()
        .flat_map(|p| p.cedar.requests.iter().map(|r| (r, &p.cedar.entities)))
        .collect();
    group.bench_function("10/one-call-rotating", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % calls.len();
            let (request, entities) = calls[i];
            black_box(
                authorizer
                    .is_authorized(request, policies, entities)
                    .decision(),
            )
        });
    });
    let (request, entities) = calls[0];
    group.bench_function("10/one-call-fixed", |b| {
        b.iter(|| {
            black_box(
                authorizer
                    .is_authorized(black_box(request), black_box(policies), entities)
                    .decision(),
            )
        });
    });
    group.finish();
}

fn sized(n: usize) -> Workload {
    let mut rng = Rng::new(1000 + n as u64);
    let app = App::generate(&mut rng, "app-0000", n);
    workload(&format!("{n}"), vec![app], 2000 + n as u64)
}

fn ten_policies() -> Workload {
    sized(10)
}

fn single_app(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    group.warm_up_time(Duration::from_secs(1));
    for n in [10_usize, 100, 1000] {
        let w = sized(n);
        run(&mut group, &w, &Lookup::Given);
        if n == 10 {
            // The same with the app looked up in a one-app map: the baseline against which the
            // 1,000-app case shows what other apps' policies cost.
            bench_portcullis(
                &mut group,
                &w,
                &Lookup::PerDecision,
                "portcullis/10-lookup-in-1-app",
            );
        }
    }
    group.finish();
}

fn many_apps(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    group.warm_up_time(Duration::from_secs(1));
    let mut rng = Rng::new(31);
    let apps: Vec<App> = (0..1000)
        .map(|a| App::generate(&mut rng, &format!("app-{a:04}"), 10))
        .collect();
    let w = workload("10000-over-1000-apps", apps, 77);
    run(&mut group, &w, &Lookup::PerDecision);
    group.finish();
}

criterion_group!(benches, single_app, many_apps, cedar_minimal);
criterion_main!(benches);
