//! Portcullis's policy engine against `cedar-policy` on equivalent policy sets.
//!
//! Sizes: 10, 100 and 1,000 policies on the requested app; and 10,000 policies over 1,000 apps
//! (Portcullis: one `PolicySet` per app in a `HashMap`, looked up inside the timed loop; Cedar: one
//! store holding all 10,000 policies, each scoped to its app). A decision is on two requested
//! scopes: one `decide` for Portcullis, two `is_authorized` calls for Cedar. Subjects, Cedar
//! requests, entities and contexts are built before timing, and the two engines are checked to
//! agree on a sample of subjects before anything is timed.
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
    App, CedarRequest, Person, Rng, cedar_policies, check_agreement, request_for,
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
    cedar: cedar_policy::PolicySet,
    prepared: Vec<Prepared>,
}

fn workload(label: &str, apps: Vec<App>, seed: u64) -> Workload {
    let sets: HashMap<String, PolicySet> = apps
        .iter()
        .map(|app| (app.id.clone(), app.compile().unwrap()))
        .collect();
    let source: String = apps.iter().map(|app| app.cedar.as_str()).collect();
    let cedar = cedar_policies(&source).unwrap();

    let mut rng = Rng::new(seed);
    let agreement = check_agreement(&mut rng, &apps, &sets, &cedar, AGREEMENT_SAMPLES).unwrap();
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
    cedar_time: Duration,
) {
    bench_portcullis(group, w, lookup, &format!("portcullis/{}", w.label));
    bench_cedar(group, w, cedar_time);
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
    cedar_time: Duration,
) {
    let authorizer = Authorizer::new();
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(cedar_time);
    group.bench_function(format!("cedar/{}", w.label), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ROTATION;
            let p = &w.prepared[i];
            black_box(p.cedar.allowed(&authorizer, black_box(&w.cedar)))
        });
    });
}

fn single_app(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    group.warm_up_time(Duration::from_secs(1));
    for n in [10_usize, 100, 1000] {
        let mut rng = Rng::new(1000 + n as u64);
        let app = App::generate(&mut rng, "app-0000", n);
        let w = workload(&format!("{n}"), vec![app], 2000 + n as u64);
        run(&mut group, &w, &Lookup::Given, Duration::from_secs(4));
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
    run(&mut group, &w, &Lookup::PerDecision, Duration::from_secs(8));
    group.finish();
}

criterion_group!(benches, single_app, many_apps);
criterion_main!(benches);
