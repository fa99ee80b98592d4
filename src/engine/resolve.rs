//! The pure core of one execution cycle (house rule 5): which steps may run now, what gets
//! pruned when a step settles, and what state the resolution ends in. Data in, data out — no IO,
//! no clock, no rendering — so the rules carry most of the tests (property tests included).
//!
//! Rules (µTask's, inventory §2.4–2.6):
//! - a step is **available** when it is runnable, was not already executed in this cycle, and
//!   each dependency is met: the dependency's state is one of the listed qualifier states
//!   (default `DONE`), or the qualifier is `ANY` and the dependency is final; a foreach parent
//!   that is not EXPANDED ignores its (stale) children dependencies unless a child is running;
//!   children of an available foreach parent are not available (they are about to be replaced);
//! - **pruning**: when a step becomes final, each dependent whose qualifier does not accept
//!   that state is PRUNEd; a PRUNEd step prunes its non-`ANY` dependents, recursively;
//! - **end of cycle**: CLIENT_ERROR → BLOCKED_BADREQUEST, FATAL_ERROR → BLOCKED_FATAL,
//!   SERVER_ERROR/TO_RETRY/AFTERRUN_ERROR/TIMEOUT-with-retries → ERROR, RUNNING → CRASHED,
//!   WAITING → WAITING, TODO → CRASHED when shutting down else BLOCKED_DEADLOCK; priority
//!   CRASHED > BLOCKED_FATAL > BLOCKED_BADREQUEST > ERROR > WAITING > BLOCKED_DEADLOCK; all
//!   final → DONE.

use std::collections::{HashMap, HashSet};

use crate::domain::{ResolutionState, StepState};
use crate::template::model::{STATE_ANY, dependency_parts};

use super::model::RunResolution;

/// Dependents of each step (step → steps that depend on it), in step order.
pub fn dependents(res: &RunResolution) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (name, s) in &res.steps {
        for dep in &s.def.step.dependencies {
            let d = dependency_parts(dep);
            out.entry(d.step).or_default().push(name.clone());
        }
    }
    out
}

/// True when every ancestor of `step` is final (µTask `parentDepsAreFinal`, for `ANY`).
fn ancestors_final(res: &RunResolution, step: &str) -> bool {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = vec![step];
    while let Some(name) = stack.pop() {
        let Some(s) = res.steps.get(name) else {
            continue;
        };
        for dep in &s.def.step.dependencies {
            let parent = dep.split_once(':').map_or(dep.as_str(), |(p, _)| p);
            if !seen.insert(parent) {
                continue;
            }
            match res.steps.get(parent) {
                Some(p) if p.state.is_final() => stack.push(parent),
                Some(_) => return false,
                None => {}
            }
        }
    }
    true
}

fn dependency_met(res: &RunResolution, step: &str, dep: &str) -> bool {
    let d = dependency_parts(dep);
    let Some(dep_step) = res.steps.get(&d.step) else {
        // a dependency on a step that does not exist can never be met
        return false;
    };
    if d.states.first().map(String::as_str) == Some(STATE_ANY)
        && dep_step.state.is_final()
        && ancestors_final(res, &d.step)
    {
        return true;
    }
    if d.states.iter().any(|s| s == dep_step.state.as_str()) {
        return true;
    }
    // a foreach parent being retried ignores its previous children, unless one is running
    if let Some(s) = res.steps.get(step)
        && s.is_foreach()
        && s.state != StepState::Expanded
        && s.def.children_steps.contains(&d.step)
        && dep_step.state != StepState::Running
    {
        return true;
    }
    false
}

/// Steps that can run now, in step order.
pub fn available_steps(res: &RunResolution, executed: &HashSet<String>) -> Vec<String> {
    let mut available: Vec<String> = Vec::new();
    let mut loops: Vec<&str> = Vec::new();
    for (name, s) in &res.steps {
        if !s.state.is_runnable() || executed.contains(name) {
            continue;
        }
        if s.def
            .step
            .dependencies
            .iter()
            .all(|d| dependency_met(res, name, d))
        {
            available.push(name.clone());
            if s.is_foreach() {
                loops.push(name);
            }
        }
    }
    if !loops.is_empty() {
        let stale: HashSet<&String> = loops
            .iter()
            .filter_map(|l| res.steps.get(*l))
            .filter(|l| l.state != StepState::Expanded)
            .flat_map(|l| l.def.children_steps.iter())
            .collect();
        available.retain(|n| !stale.contains(n));
    }
    available
}

/// Propagates PRUNE from the `modified` steps; adds every pruned step to `modified`.
pub fn prune_steps(res: &mut RunResolution, modified: &mut HashSet<String>) {
    let index = dependents(res);
    let mut queue: Vec<String> = modified.iter().cloned().collect();
    queue.sort();
    while let Some(name) = queue.pop() {
        let Some(state) = res.state_of(&name).cloned() else {
            continue;
        };
        if !state.is_final() {
            continue;
        }
        let Some(children) = index.get(&name) else {
            continue;
        };
        for child in children {
            let Some(c) = res.steps.get(child) else {
                continue;
            };
            if c.state == StepState::Prune {
                continue;
            }
            let Some(dep) = c
                .def
                .step
                .dependencies
                .iter()
                .map(|d| dependency_parts(d))
                .find(|d| d.step == name)
            else {
                continue;
            };
            let is_any = dep.states.first().map(String::as_str) == Some(STATE_ANY);
            let prune = if state == StepState::Prune {
                !is_any
            } else {
                !is_any && !dep.states.iter().any(|s| s == state.as_str())
            };
            if prune {
                res.set_state(child, StepState::Prune);
                modified.insert(child.clone());
                queue.push(child.clone());
            }
        }
    }
}

/// The resolution state after a cycle, and whether every step is final.
pub fn end_state(res: &RunResolution, shutting_down: bool) -> ResolutionState {
    let mut seen: HashSet<ResolutionState> = HashSet::new();
    let mut all_done = true;
    for s in res.steps.values() {
        let candidate = match &s.state {
            StepState::ClientError => Some(ResolutionState::BlockedBadRequest),
            StepState::FatalError => Some(ResolutionState::BlockedFatal),
            StepState::ServerError
            | StepState::ToRetry
            | StepState::AfterrunError
            | StepState::RetryNow => Some(ResolutionState::Error),
            StepState::Running | StepState::Crashed => Some(ResolutionState::Crashed),
            StepState::Waiting => Some(ResolutionState::Waiting),
            StepState::Todo | StepState::Expanded => Some(if shutting_down {
                ResolutionState::Crashed
            } else {
                ResolutionState::BlockedDeadlock
            }),
            _ => None,
        };
        if let Some(c) = candidate {
            all_done = false;
            seen.insert(c);
        }
    }
    if all_done {
        return ResolutionState::Done;
    }
    for s in [
        ResolutionState::Crashed,
        ResolutionState::BlockedFatal,
        ResolutionState::BlockedBadRequest,
        ResolutionState::Error,
        ResolutionState::Waiting,
        ResolutionState::BlockedDeadlock,
    ] {
        if seen.contains(&s) {
            return s;
        }
    }
    ResolutionState::BlockedDeadlock
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ResolutionId, TaskId};
    use crate::engine::model::RunStep;
    use crate::template::model::Step;

    fn step(deps: &[&str]) -> Step {
        Step {
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    fn res(steps: &[(&str, &[&str])]) -> RunResolution {
        RunResolution {
            id: ResolutionId::new(),
            task_id: TaskId::new(),
            state: ResolutionState::Running,
            run_count: 1,
            run_max: 100,
            next_retry: None,
            steps: steps
                .iter()
                .map(|(n, d)| (n.to_string(), RunStep::new(*n, step(d))))
                .collect(),
        }
    }

    #[test]
    fn only_steps_with_met_dependencies_are_available() {
        let mut r = res(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["a:ANY"]),
            ("d", &["b", "c"]),
        ]);
        let none = HashSet::new();
        assert_eq!(available_steps(&r, &none), ["a"]);
        r.set_state("a", StepState::Done);
        assert_eq!(available_steps(&r, &none), ["b", "c"]);
        r.set_state("b", StepState::Done);
        r.set_state("c", StepState::Done);
        assert_eq!(available_steps(&r, &none), ["d"]);
        let executed: HashSet<String> = ["d".to_string()].into();
        assert!(available_steps(&r, &executed).is_empty());
    }

    #[test]
    fn any_waits_for_a_final_state() {
        let mut r = res(&[("a", &[]), ("b", &["a:ANY"])]);
        r.set_state("a", StepState::ServerError);
        assert!(available_steps(&r, &HashSet::new()).contains(&"a".to_string()));
        assert!(!available_steps(&r, &HashSet::new()).contains(&"b".to_string()));
        r.set_state("a", StepState::Custom("NOT_FOUND".into()));
        assert_eq!(available_steps(&r, &HashSet::new()), ["b"]);
    }

    #[test]
    fn prune_propagates_but_not_through_any() {
        let mut r = res(&[
            ("a", &[]),
            ("b", &["a:FOO"]),
            ("c", &["b"]),
            ("d", &["c:ANY"]),
            ("e", &["a"]),
        ]);
        r.set_state("a", StepState::Done);
        let mut modified: HashSet<String> = ["a".to_string()].into();
        prune_steps(&mut r, &mut modified);
        assert_eq!(r.state_of("b"), Some(&StepState::Prune));
        assert_eq!(r.state_of("c"), Some(&StepState::Prune));
        assert_eq!(
            r.state_of("d"),
            Some(&StepState::Todo),
            "ANY dependents are never pruned"
        );
        assert_eq!(r.state_of("e"), Some(&StepState::Todo));
        assert!(modified.contains("b") && modified.contains("c"));
        assert_eq!(available_steps(&r, &HashSet::new()), ["d", "e"]);
    }

    #[test]
    fn non_final_states_do_not_prune() {
        let mut r = res(&[("a", &[]), ("b", &["a"])]);
        r.set_state("a", StepState::ServerError);
        let mut modified: HashSet<String> = ["a".to_string()].into();
        prune_steps(&mut r, &mut modified);
        assert_eq!(r.state_of("b"), Some(&StepState::Todo));
    }

    #[test]
    fn end_state_priorities() {
        let mut r = res(&[("a", &[]), ("b", &[]), ("c", &[])]);
        assert_eq!(end_state(&r, false), ResolutionState::BlockedDeadlock);
        assert_eq!(end_state(&r, true), ResolutionState::Crashed);
        r.set_state("a", StepState::Waiting);
        assert_eq!(end_state(&r, false), ResolutionState::Waiting);
        r.set_state("b", StepState::ServerError);
        assert_eq!(end_state(&r, false), ResolutionState::Error);
        r.set_state("c", StepState::ClientError);
        assert_eq!(end_state(&r, false), ResolutionState::BlockedBadRequest);
        r.set_state("a", StepState::FatalError);
        assert_eq!(end_state(&r, false), ResolutionState::BlockedFatal);
        r.set_state("b", StepState::Running);
        assert_eq!(end_state(&r, false), ResolutionState::Crashed);
        for s in ["a", "b", "c"] {
            r.set_state(s, StepState::Done);
        }
        r.set_state("c", StepState::Prune);
        assert_eq!(end_state(&r, false), ResolutionState::Done);
    }

    /// A tiny deterministic generator (no extra crate): xorshift.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Property: simulating whole cycles on random DAGs with random outcomes, no step is ever
    /// made available before each of its dependencies is satisfied, and the simulation ends.
    #[test]
    fn property_no_step_runs_before_its_dependencies() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let outcomes = [
            StepState::Done,
            StepState::Done,
            StepState::Done,
            StepState::ServerError,
            StepState::ClientError,
            StepState::Custom("X".into()),
            StepState::Prune,
        ];
        for _ in 0..300 {
            let n = 2 + rng.below(12) as usize;
            let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
            let mut steps = Vec::new();
            for i in 0..n {
                let mut deps = Vec::new();
                for prev in names.iter().take(i) {
                    if rng.below(3) == 0 {
                        let q = match rng.below(4) {
                            0 => format!("{prev}:ANY"),
                            1 => format!("{prev}:X"),
                            _ => prev.clone(),
                        };
                        deps.push(q);
                    }
                }
                steps.push((names[i].clone(), deps));
            }
            let mut r = RunResolution {
                id: ResolutionId::new(),
                task_id: TaskId::new(),
                state: ResolutionState::Running,
                run_count: 1,
                run_max: 100,
                next_retry: None,
                steps: steps
                    .iter()
                    .map(|(n, d)| {
                        (
                            n.clone(),
                            RunStep::new(
                                n.clone(),
                                Step {
                                    dependencies: d.clone(),
                                    ..Default::default()
                                },
                            ),
                        )
                    })
                    .collect(),
            };
            let mut executed = HashSet::new();
            for _round in 0..(n * 2 + 2) {
                let av = available_steps(&r, &executed);
                if av.is_empty() {
                    break;
                }
                for name in av {
                    // check the property against the definition directly
                    for dep in &r.steps[&name].def.step.dependencies {
                        let d = dependency_parts(dep);
                        let st = &r.steps[&d.step].state;
                        let ok = if d.states[0] == STATE_ANY {
                            st.is_final() && ancestors_final(&r, &d.step)
                        } else {
                            d.states.iter().any(|q| q == st.as_str())
                        };
                        assert!(ok, "{name} available while {dep} is {st}");
                    }
                    let out = outcomes[rng.below(outcomes.len() as u64) as usize].clone();
                    r.set_state(&name, out);
                    executed.insert(name.clone());
                    let mut modified: HashSet<String> = [name].into();
                    prune_steps(&mut r, &mut modified);
                }
            }
            // every step is final, still runnable (errors), or TODO with an unmet dependency
            for (name, s) in &r.steps {
                if s.state == StepState::Todo {
                    assert!(
                        !s.def
                            .step
                            .dependencies
                            .iter()
                            .all(|d| dependency_met(&r, name, d)),
                        "{name} left TODO with its dependencies met"
                    );
                }
            }
        }
    }
}
