//! Process attribution: /proc enrichment and tool identification (filled in by the transparent issue).
