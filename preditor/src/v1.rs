//! The specification's v1 model zip (`EURUSD_M15.zip` holding `EURUSD_M15_ppo.zip`, the stable-baselines3
//! policy, and `EURUSD_M15_hmm.pkl`, the pickled hmmlearn HMM, with the seed's metadata in the comment):
//! recognised by its members so that every loader — `preditor check` first — says what the file is and the
//! one command that converts it, instead of the first metadata field the v1 format happens to lack.
//! The same sentence is `scripts/oracle_core.py` `v1_zip_description`.

use std::path::Path;

/// `(policy, hmm)` member names if `names` is the v1 layout: one `<stem>_ppo.zip`, one `<stem>_hmm.pkl`
/// and no ONNX graph.
pub fn v1_members<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<(String, String)> {
    let (mut ppo, mut hmm, mut onnx) = (Vec::new(), Vec::new(), false);
    for n in names {
        if n.ends_with("_ppo.zip") {
            ppo.push(n);
        } else if n.ends_with("_hmm.pkl") {
            hmm.push(n);
        } else if n.ends_with(".onnx") {
            onnx = true;
        }
    }
    match (ppo.as_slice(), hmm.as_slice(), onnx) {
        ([p], [h], false) => Some(((*p).to_string(), (*h).to_string())),
        _ => None,
    }
}

/// What a v1 zip is and how to convert it (without the leading `path: `, which [`crate::model::ModelError`]
/// adds), or `None` when the members are not the v1 layout.
pub fn v1_description<'a>(path: &Path, names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let (ppo, hmm) = v1_members(names)?;
    let stem = ppo.strip_suffix("_ppo.zip").unwrap_or(&ppo);
    Some(format!(
        "a v1 model zip ({ppo}: the stable-baselines3 policy, {hmm}: the pickled HMM), not the ONNX model zip \
         this program runs; convert it with `scripts/.venv/bin/python scripts/export.py --v1 {path} --config \
         NORM.json --out models/{stem}.zip` (NORM.json from scripts/normalization.py on your training bars; \
         export.py names anything else missing; models/README.md, 'Converting a v1 zip')",
        path = path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_the_v1_layout() {
        let v1 = ["EURUSD_M15_hmm.pkl", "EURUSD_M15_ppo.zip"];
        assert_eq!(
            v1_members(v1),
            Some(("EURUSD_M15_ppo.zip".into(), "EURUSD_M15_hmm.pkl".into()))
        );
        assert_eq!(
            v1_members(["EURUSD_H1_ppo.onnx", "EURUSD_H1_hmm.onnx"]),
            None
        );
        assert_eq!(v1_members(["EURUSD_M15_ppo.zip"]), None);
        assert_eq!(v1_members(["A_ppo.zip", "B_ppo.zip", "A_hmm.pkl"]), None);
        let text = v1_description(Path::new("models/EURUSD_M15.zip"), v1).unwrap_or_default();
        assert!(text.contains("--v1 models/EURUSD_M15.zip"), "{text}");
        assert!(text.contains("--out models/EURUSD_M15.zip"), "{text}");
    }
}
