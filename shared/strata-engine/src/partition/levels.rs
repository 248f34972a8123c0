//! The shape of a partition's sorted runs: which merge comes next under the
//! configured policy, and the manifest levels a merge leaves. Pure functions
//! of the manifest, so the policy is tested without a store.

use std::collections::HashSet;

use crate::config::{CompactionPolicy, EngineConfig};
use crate::manifest::SortedRun;
use crate::run::RunInfo;

/// Where a merge's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// Into the run at this position, beside its SSTs not taken.
    Into(usize),
    /// As a new run inserted at this position.
    NewAt(usize),
}

/// One merge: SSTs taken from the runs at `first..=last_input` (contiguous
/// in age), merged into one sorted run at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MergePlan {
    pub(super) first: usize,
    pub(super) last_input: usize,
    pub(super) taken: HashSet<String>,
    pub(super) target: Target,
    /// The output run's level.
    pub(super) level: u32,
    /// No run is older than the output: tombstones past retention may go.
    pub(super) bottom: bool,
}

impl MergePlan {
    /// The taken SSTs as sorted runs, newest first: the merge's inputs.
    pub(super) fn inputs(&self, levels: &[SortedRun]) -> Vec<SortedRun> {
        levels[self.first..=self.last_input]
            .iter()
            .map(|r| self.part_of(r, true))
            .filter(|r| !r.ssts.is_empty())
            .collect()
    }

    /// The SSTs of `run` the merge takes (`taken`) or leaves.
    fn part_of(&self, run: &SortedRun, taken: bool) -> SortedRun {
        SortedRun {
            level: run.level,
            ssts: run
                .ssts
                .iter()
                .filter(|s| self.taken.contains(&s.id) == taken)
                .cloned()
                .collect(),
        }
    }

    /// The levels after the merge, its `outputs` (in key order) in place
    /// of what it took.
    pub(super) fn apply(&self, levels: &[SortedRun], outputs: Vec<RunInfo>) -> Vec<SortedRun> {
        let mut out: Vec<SortedRun> = levels.iter().map(|r| self.part_of(r, false)).collect();
        match self.target {
            Target::Into(p) => {
                let run = &mut out[p];
                run.level = self.level;
                run.ssts.extend(outputs);
                run.ssts.sort_by(|a, b| a.first_key.cmp(&b.first_key));
            }
            Target::NewAt(p) => out.insert(
                p,
                SortedRun {
                    level: self.level,
                    ssts: outputs,
                },
            ),
        }
        out.retain(|r| !r.ssts.is_empty());
        out
    }
}

/// The merge the policy wants next for partition `part`, if any; once it
/// wants none, the rewrite of an inherited SST.
pub(super) fn next_merge(levels: &[SortedRun], c: &EngineConfig, part: u32) -> Option<MergePlan> {
    match c.compaction_policy {
        CompactionPolicy::Leveled => leveled(levels, c),
        CompactionPolicy::Tiered => tiered(levels, c),
    }
    .or_else(|| rewrite_inherited(levels, part))
}

/// A split's children start from their parent's SSTs, which hold the
/// sibling's keys too (space the table pays twice once the sibling has
/// rewritten its half). Once the policy has nothing to do, the largest
/// inherited SST is rewritten on its own, in place, keeping only this
/// partition's keys (merges skip the rest); when both children have, GC
/// collects the parent's SST.
fn rewrite_inherited(levels: &[SortedRun], part: u32) -> Option<MergePlan> {
    let (p, sst) = levels
        .iter()
        .enumerate()
        .flat_map(|(p, r)| r.ssts.iter().map(move |s| (p, s)))
        .filter(|(_, s)| s.inherited_from(part).is_some())
        .max_by_key(|(_, s)| s.size)?;
    Some(MergePlan {
        first: p,
        last_input: p,
        taken: HashSet::from([sst.id.clone()]),
        target: Target::Into(p),
        level: levels[p].level,
        bottom: p + 1 == levels.len(),
    })
}

/// Target size of level `n` (>= 1).
fn level_target(c: &EngineConfig, n: u32) -> u64 {
    let ratio = c.level_ratio.max(2);
    (1..n).fold(c.level_base_bytes.max(1), |t, _| t.saturating_mul(ratio))
}

/// The level a sorted run of `bytes` belongs at when added below every
/// other run (`deepest`: the deepest level there is).
pub(super) fn bottom_level_for(c: &EngineConfig, bytes: u64, deepest: u32) -> u32 {
    let mut n = 1;
    while level_target(c, n) < bytes && n < 16 {
        n += 1;
    }
    n.max(deepest + 1)
}

/// Key range covered by some SSTs (None: unknown, i.e. everything).
fn span_of<'a>(ssts: impl Iterator<Item = &'a RunInfo>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut lo: Option<Vec<u8>> = None;
    let mut hi: Option<Vec<u8>> = None;
    for s in ssts {
        if s.range_unknown() {
            return None;
        }
        if lo.as_ref().is_none_or(|l| s.first_key < *l) {
            lo = Some(s.first_key.clone());
        }
        if hi.as_ref().is_none_or(|h| s.last_key > *h) {
            hi = Some(s.last_key.clone());
        }
    }
    Some((lo.unwrap_or_default(), hi.unwrap_or_default()))
}

/// The SSTs of `run` overlapping `span` (all of them when it is unknown).
fn overlapping<'a>(run: &'a SortedRun, span: &Option<(Vec<u8>, Vec<u8>)>) -> Vec<&'a RunInfo> {
    run.ssts
        .iter()
        .filter(|s| match span {
            None => true,
            Some((lo, hi)) => s.range_unknown() || (s.first_key <= *hi && *lo <= s.last_key),
        })
        .collect()
}

/// Leveled: level-0 runs (flushes) are merged into level 1 once there are
/// `max_runs` of them; a level over its target pushes one SST, the one
/// overlapping least of the next level, into the next level.
fn leveled(levels: &[SortedRun], c: &EngineConfig) -> Option<MergePlan> {
    let l0 = levels.iter().take_while(|r| r.level == 0).count();
    if l0 > 0 && l0 >= c.max_runs.max(1) {
        let span = span_of(levels[..l0].iter().flat_map(|r| r.ssts.iter()));
        let mut taken: HashSet<String> = levels[..l0]
            .iter()
            .flat_map(|r| r.ssts.iter().map(|s| s.id.clone()))
            .collect();
        let (target, last_input) = match levels.get(l0) {
            Some(next) if next.level == 1 => {
                taken.extend(overlapping(next, &span).iter().map(|s| s.id.clone()));
                (Target::Into(l0), l0)
            }
            _ => (Target::NewAt(l0), l0 - 1),
        };
        let bottom = match target {
            Target::Into(p) => p + 1 == levels.len(),
            Target::NewAt(p) => p == levels.len(),
        };
        return Some(MergePlan {
            first: 0,
            last_input,
            taken,
            target,
            level: 1,
            bottom,
        });
    }
    for p in l0..levels.len() {
        let run = &levels[p];
        let n = run.level.max(1);
        if run.bytes() <= level_target(c, n) || run.ssts.is_empty() {
            continue;
        }
        let next = levels.get(p + 1).filter(|r| r.level == n + 1);
        // The SST whose push rewrites the fewest bytes of the next level.
        let pick = run.ssts.iter().min_by_key(|s| {
            let span = span_of(std::iter::once(*s));
            let rewritten: u64 = next
                .map(|nx| overlapping(nx, &span).iter().map(|o| o.size).sum())
                .unwrap_or(0);
            (rewritten * 1024) / s.size.max(1)
        })?;
        let mut taken: HashSet<String> = HashSet::from([pick.id.clone()]);
        let (target, last_input) = match next {
            Some(nx) => {
                let span = span_of(std::iter::once(pick));
                taken.extend(overlapping(nx, &span).iter().map(|s| s.id.clone()));
                (Target::Into(p + 1), p + 1)
            }
            None => (Target::NewAt(p + 1), p),
        };
        let bottom = match target {
            Target::Into(q) => q + 1 == levels.len(),
            Target::NewAt(q) => q == levels.len(),
        };
        return Some(MergePlan {
            first: p,
            last_input,
            taken,
            target,
            level: n + 1,
            bottom,
        });
    }
    None
}

/// Tiered: the newest `max_runs` runs of similar size (each within a factor
/// of two of the group's mean) are merged into one run; when runs pile up
/// past three times that anyway, the newest `max_runs` are merged.
fn tiered(levels: &[SortedRun], c: &EngineConfig) -> Option<MergePlan> {
    let k = c.max_runs.max(2);
    let whole = |first: usize, last: usize| {
        let taken = levels[first..=last]
            .iter()
            .flat_map(|r| r.ssts.iter().map(|s| s.id.clone()))
            .collect();
        let level = levels[first..=last]
            .iter()
            .map(|r| r.level)
            .max()
            .unwrap_or(0)
            + 1;
        MergePlan {
            first,
            last_input: last,
            taken,
            target: Target::Into(last),
            level,
            bottom: last + 1 == levels.len(),
        }
    };
    let mut start = 0;
    while start < levels.len() {
        let mut end = start;
        let mut sum = levels[start].bytes();
        while end + 1 < levels.len() {
            let next = levels[end + 1].bytes();
            let mean = sum / (end - start + 1) as u64;
            if next > mean.saturating_mul(2) || next.saturating_mul(2) < mean {
                break;
            }
            end += 1;
            sum += next;
            if end - start + 1 == k {
                return Some(whole(start, end));
            }
        }
        start = end + 1;
    }
    (levels.len() > 3 * k).then(|| whole(0, k - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sst(id: &str, lo: u8, hi: u8, size: u64) -> RunInfo {
        RunInfo {
            id: id.into(),
            size,
            meta_offset: 0,
            entries: 1,
            max_seq: 1,
            first_key: vec![lo],
            last_key: vec![hi],
            home: None,
            live: None,
            expiry: None,
        }
    }

    fn run(level: u32, ssts: Vec<RunInfo>) -> SortedRun {
        SortedRun { level, ssts }
    }

    fn config() -> EngineConfig {
        EngineConfig {
            max_runs: 2,
            level_base_bytes: 100,
            level_ratio: 10,
            ..EngineConfig::default()
        }
    }

    #[test]
    fn level0_runs_merge_into_the_overlapping_part_of_level1() {
        let levels = vec![
            run(0, vec![sst("a", 10, 20, 10)]),
            run(0, vec![sst("b", 15, 30, 10)]),
            run(
                1,
                vec![
                    sst("c", 0, 5, 10),
                    sst("d", 25, 40, 10),
                    sst("e", 50, 60, 10),
                ],
            ),
        ];
        let plan = next_merge(&levels, &config(), 0).expect("a merge");
        assert_eq!(plan.target, Target::Into(2));
        let taken: HashSet<&str> = plan.taken.iter().map(|s| s.as_str()).collect();
        assert_eq!(taken, HashSet::from(["a", "b", "d"]));
        assert!(plan.bottom);
        let after = plan.apply(&levels, vec![sst("x", 10, 40, 30)]);
        assert_eq!(after.len(), 1);
        let ids: Vec<&str> = after[0].ssts.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["c", "x", "e"]);
    }

    #[test]
    fn an_oversized_level_pushes_one_sst_down() {
        let levels = vec![
            run(1, vec![sst("a", 0, 9, 60), sst("b", 10, 19, 60)]),
            run(2, vec![sst("c", 0, 4, 100), sst("d", 12, 14, 10)]),
        ];
        let plan = next_merge(&levels, &config(), 0).expect("a merge");
        // b overlaps 10 bytes of level 2, a 100: b goes.
        let taken: HashSet<&str> = plan.taken.iter().map(|s| s.as_str()).collect();
        assert_eq!(taken, HashSet::from(["b", "d"]));
        assert_eq!(plan.level, 2);
        let after = plan.apply(&levels, vec![sst("y", 10, 19, 70)]);
        assert_eq!(after[0].ssts.len(), 1);
        assert_eq!(after[1].ssts.len(), 2);
        // Within target everywhere: nothing more to do.
        let calm = vec![run(1, vec![sst("a", 0, 9, 60)])];
        assert_eq!(next_merge(&calm, &config(), 0), None);
    }

    #[test]
    fn inherited_ssts_are_rewritten_in_place_once_nothing_else_is_due() {
        let mut inherited = sst("b", 10, 19, 80);
        inherited.home = Some(0);
        let levels = vec![
            run(1, vec![sst("a", 0, 9, 10), inherited]),
            run(2, vec![sst("c", 0, 40, 100)]),
        ];
        let plan = next_merge(&levels, &config(), 1).expect("a rewrite");
        assert_eq!(plan.taken, HashSet::from(["b".to_string()]));
        assert_eq!((plan.first, plan.last_input, plan.level), (0, 0, 1));
        assert_eq!(plan.target, Target::Into(0));
        assert!(!plan.bottom);
        let after = plan.apply(&levels, vec![sst("b2", 10, 18, 40)]);
        let ids: Vec<&str> = after[0].ssts.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b2"]);
        // Its home partition's own SSTs are not inherited there.
        assert_eq!(next_merge(&levels, &config(), 0), None);
    }

    #[test]
    fn tiered_merges_runs_of_a_size() {
        let c = EngineConfig {
            compaction_policy: CompactionPolicy::Tiered,
            ..config()
        };
        let levels = vec![
            run(0, vec![sst("a", 0, 9, 10)]),
            run(0, vec![sst("b", 0, 9, 12)]),
            run(1, vec![sst("c", 0, 9, 1000)]),
        ];
        let plan = next_merge(&levels, &c, 0).expect("a merge");
        assert_eq!((plan.first, plan.last_input), (0, 1));
        assert!(!plan.bottom);
        let after = plan.apply(&levels, vec![sst("x", 0, 9, 22)]);
        assert_eq!(after.len(), 2);
        assert_eq!(after[0].ssts[0].id, "x");
    }
}
