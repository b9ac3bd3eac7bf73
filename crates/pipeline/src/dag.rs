//! The stage graph: stage B runs after stage A when one of B's dependencies is an output of A
//! (the same path, or one inside the other), as DVC links them. Checks that no two stages
//! write the same path and that there is no cycle, orders the stages, and draws the graph
//! (text, Graphviz dot, Mermaid).

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::{PipelineError, Result};
use crate::spec::Pipeline;

/// Edges between the stages of a [`Pipeline`], by index.
#[derive(Clone, Debug)]
pub struct Dag {
    /// `parents[i]`: the stages whose outputs stage `i` reads.
    pub parents: Vec<BTreeSet<usize>>,
    /// Every stage, parents before children; ties in file order.
    pub order: Vec<usize>,
}

/// `a` is `b`, or inside it, or contains it.
fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

impl Dag {
    pub fn build(p: &Pipeline) -> Result<Self> {
        let outs: Vec<Vec<std::path::PathBuf>> = p
            .stages
            .iter()
            .map(|s| s.outs.iter().map(|o| s.abs(&o.path)).collect())
            .collect();
        for (i, a) in outs.iter().enumerate() {
            for (j, b) in outs.iter().enumerate().skip(i) {
                for (x, pa) in a.iter().enumerate() {
                    for (y, pb) in b.iter().enumerate() {
                        if (i != j || x < y) && overlaps(pa, pb) {
                            return Err(PipelineError::OverlappingOutputs {
                                path: p.stages[j].outs[y].path.clone(),
                                first: p.stages[i].name.clone(),
                                second: p.stages[j].name.clone(),
                            });
                        }
                    }
                }
            }
        }
        let mut parents = vec![BTreeSet::new(); p.stages.len()];
        for (i, s) in p.stages.iter().enumerate() {
            for d in &s.deps {
                let dep = s.abs(d);
                for (j, o) in outs.iter().enumerate() {
                    if o.iter().any(|o| overlaps(&dep, o)) {
                        parents[i].insert(j);
                    }
                }
            }
        }
        let order = topo(p, &parents)?;
        Ok(Self { parents, order })
    }

    /// `targets` and every stage they depend on, transitively.
    pub fn upstream_of(&self, targets: &[usize]) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<usize> = targets.to_vec();
        while let Some(i) = todo.pop() {
            if seen.insert(i) {
                todo.extend(self.parents[i].iter().copied());
            }
        }
        seen
    }

    /// `targets` and every stage that depends on them, transitively.
    pub fn downstream_of(&self, targets: &[usize]) -> BTreeSet<usize> {
        let mut seen: BTreeSet<usize> = targets.iter().copied().collect();
        for &i in &self.order {
            if self.parents[i].iter().any(|p| seen.contains(p)) {
                seen.insert(i);
            }
        }
        seen
    }

    /// Graphviz dot.
    pub fn to_dot(&self, p: &Pipeline) -> String {
        let mut s = String::from("strict digraph {\n");
        for &i in &self.order {
            s.push_str(&format!("\t\"{}\";\n", p.stages[i].name));
        }
        for &i in &self.order {
            for &j in &self.parents[i] {
                s.push_str(&format!(
                    "\t\"{}\" -> \"{}\";\n",
                    p.stages[j].name, p.stages[i].name
                ));
            }
        }
        s.push_str("}\n");
        s
    }

    /// A Mermaid flowchart (GitHub renders it in Markdown).
    pub fn to_mermaid(&self, p: &Pipeline) -> String {
        let mut s = String::from("flowchart TD\n");
        for &i in &self.order {
            s.push_str(&format!("\tnode{i}[\"{}\"]\n", p.stages[i].name));
        }
        for &i in &self.order {
            for &j in &self.parents[i] {
                s.push_str(&format!("\tnode{j}-->node{i}\n"));
            }
        }
        s
    }

    /// Text for a terminal: each stage in run order, under the stages it reads from.
    pub fn to_text(&self, p: &Pipeline) -> String {
        let mut s = String::new();
        let depth = self.depths();
        for &i in &self.order {
            let indent = "  ".repeat(depth[i]);
            let after: Vec<&str> = self.parents[i]
                .iter()
                .map(|&j| p.stages[j].name.as_str())
                .collect();
            let arrow = if depth[i] == 0 { "" } else { "└─ " };
            if after.is_empty() {
                s.push_str(&format!("{indent}{arrow}{}\n", p.stages[i].name));
            } else {
                s.push_str(&format!(
                    "{indent}{arrow}{}  (after {})\n",
                    p.stages[i].name,
                    after.join(", ")
                ));
            }
        }
        s
    }

    /// Length of the longest path from a stage without parents.
    fn depths(&self) -> Vec<usize> {
        let mut d = vec![0; self.parents.len()];
        for &i in &self.order {
            d[i] = self.parents[i].iter().map(|&j| d[j] + 1).max().unwrap_or(0);
        }
        d
    }
}

/// Kahn's algorithm, taking the first ready stage in file order each time.
fn topo(p: &Pipeline, parents: &[BTreeSet<usize>]) -> Result<Vec<usize>> {
    let n = parents.len();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && parents[i].iter().all(|&j| done[j]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => return Err(PipelineError::Cycle(cycle(p, parents, &done))),
        }
    }
    Ok(order)
}

/// One cycle among the stages not yet ordered, as names (the first repeated at the end).
fn cycle(p: &Pipeline, parents: &[BTreeSet<usize>], done: &[bool]) -> Vec<String> {
    let start = (0..parents.len()).find(|&i| !done[i]).unwrap_or(0);
    let mut path = vec![start];
    let mut cur = start;
    while let Some(&next) = parents[cur].iter().find(|&&j| !done[j]) {
        if let Some(pos) = path.iter().position(|&x| x == next) {
            let mut c: Vec<String> = path[pos..]
                .iter()
                .rev()
                .map(|&i| p.stages[i].name.clone())
                .collect();
            c.push(p.stages[next].name.clone());
            return c;
        }
        path.push(next);
        cur = next;
    }
    path.iter().map(|&i| p.stages[i].name.clone()).collect()
}

/// The stage names of `stages`, for messages.
pub fn names<'a>(p: &'a Pipeline, stages: impl IntoIterator<Item = &'a usize>) -> Vec<&'a str> {
    stages
        .into_iter()
        .map(|&i| p.stages[i].name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(yaml: &str) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dvc.yaml"), yaml).unwrap();
        Pipeline::load(&dir.path().join("dvc.yaml")).unwrap()
    }

    #[test]
    fn stages_are_ordered_by_what_they_read() {
        let p = pipeline(
            "stages:\n  eval:\n    cmd: e\n    deps: [models/m, data/test.jsonl]\n  train:\n    cmd: t\n    deps: [data/train.jsonl]\n    outs: [models/m]\n  prep:\n    cmd: p\n    outs: [data]\n",
        );
        let d = Dag::build(&p).unwrap();
        assert_eq!(names(&p, &d.order), ["prep", "train", "eval"]);
        assert_eq!(names(&p, &d.upstream_of(&[1])), ["train", "prep"]);
        assert_eq!(names(&p, &d.downstream_of(&[2])), ["eval", "train", "prep"]);
        assert!(d.to_dot(&p).contains("\"train\" -> \"eval\""));
        assert!(d.to_text(&p).contains("eval  (after train, prep)"));
    }

    #[test]
    fn cycles_and_shared_outputs_are_refused() {
        let p = pipeline(
            "stages:\n  a:\n    cmd: a\n    deps: [y]\n    outs: [x]\n  b:\n    cmd: b\n    deps: [x]\n    outs: [y]\n",
        );
        let e = Dag::build(&p).unwrap_err().to_string();
        assert!(
            e.contains("cycle") && e.contains("a") && e.contains("b"),
            "{e}"
        );
        let p = pipeline(
            "stages:\n  a:\n    cmd: a\n    outs: [out]\n  b:\n    cmd: b\n    outs: [out/x]\n",
        );
        let e = Dag::build(&p).unwrap_err().to_string();
        assert!(e.contains("both stage `a` and stage `b`"), "{e}");
    }
}
