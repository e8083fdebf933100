//! Every detector on hostile text: fragments that wake each detector's
//! context logic (keys, manifests, addresses, names, ids) glued to
//! multi-byte characters at random, so that any byte-offset arithmetic
//! lands inside a character sooner or later. A panic here would be a
//! request that takes its connection down instead of being inspected.

use std::sync::LazyLock;

use promptwall_llm::detect::{DetectPolicy, Detector};
use proptest::prelude::*;

static DETECTOR: LazyLock<Detector> =
    LazyLock::new(|| Detector::new(&DetectPolicy::default()).expect("default policy"));

const FRAGMENTS: &[&str] = &[
    "apiToken = \"",
    "credentialsId: '",
    "password: ",
    "9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit",
    "\"",
    "kind: Secret\n",
    "data:\n",
    "  extra: UyFCXCpkJHpEc2I9\n",
    "  .dockercfg: |\n    ",
    "ghp_a31ciirduf5qzpk68746djddn3553p22fv73",
    "hooks.slack.com/services/",
    "lives at ",
    "the corner of ",
    " and ",
    "Koskikatu 25",
    " Apt. 864",
    "\nSuite 501\n",
    "\nEstonia 62488",
    "PSC 0413, Box 8144\nAPO AA 42323",
    "Anna Kowalski",
    "Kowalski",
    "BSN: ",
    "111222333",
    "12345678Z",
    "RSSMRA85T10A562S",
    "passport ",
    "P<UTOERIKSSON<<ANNA<MARIA",
    "AAAAAAAAAAAAAAAAAAAAA",
    "\\n",
    " ",
    "\n",
    "1",
    "Z",
];

/// Glued before a fragment: nothing, or a character of 2, 3 or 4 bytes.
const GLUE: &[&str] = &["", "é", "«", "日本", "🦀", "\u{301}"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn no_text_makes_a_detector_panic(parts in prop::collection::vec((0..GLUE.len(), 0..FRAGMENTS.len()), 0..40)) {
        let text: String = parts.iter().map(|&(g, f)| format!("{}{}", GLUE[g], FRAGMENTS[f])).collect();
        for f in DETECTOR.scan(&text) {
            // Findings are whole characters of the text.
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
    }
}
