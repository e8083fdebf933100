//! Equivalence check helper (not committed): prints every finding of the
//! default detector on each 64 KB chunk of the files given.
use promptwall_llm::detect::{Detector, PipelineConfig};
use std::io::Write;
fn main() {
    let d = Detector::new(&PipelineConfig::default()).unwrap();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let t = std::time::Instant::now();
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let mut at = 0;
        while at < text.len() {
            let mut end = (at + 65536).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            for f in d.scan(&text[at..end]) {
                writeln!(out, "{path} {} {} {} {}", at + f.start, at + f.end, f.kind, f.action.as_str()).unwrap();
            }
            at = end;
        }
    }
    eprintln!("scan took {:?}", t.elapsed());
}
