#!/usr/bin/env python3
"""Build the independent personal-data corpus (corpus.jsonl) from public
evaluation data nobody on promptwall wrote. Mechanical: every labelled
span of a mapped type is kept, every unlabelled document is a negative;
nothing is filtered by what promptwall detects.

    python3 extract.py PRESIDIO_RESEARCH_GIT_DIR PRESIDIO_GIT_DIR > corpus.jsonl

Each argument is a git directory (bare or not) of the repository at the
commit named below; files are read with `git show COMMIT:PATH`.
"""
import ast
import json
import subprocess
import sys

RESEARCH_COMMIT = "7622dec1e5f7d25dc60b57c28c39f4c4af197018"
PRESIDIO_COMMIT = "0aa9f8e44275cb52c00fbbebe19168e934e1f076"

# presidio entity type -> promptwall kind ("ip" accepts ipv4 or ipv6).
SYNTH_KINDS = {
    "PERSON": "name",
    "STREET_ADDRESS": "address",
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban",
    "US_SSN": "us_ssn",
    "IP_ADDRESS": "ip",
}

# presidio-analyzer recognizer tests -> promptwall kind.
RECOGNIZER_TESTS = {
    "test_email_recognizer.py": "email",
    "test_phone_recognizer.py": "phone",
    "test_credit_card_recognizer.py": "credit_card",
    "test_iban_recognizer.py": "iban",
    "test_us_ssn_recognizer.py": "us_ssn",
    "test_ip_recognizer.py": "ip",
    "test_us_passport_recognizer.py": "passport",
    "test_uk_passport_recognizer.py": "passport",
    "test_de_passport_recognizer.py": "passport",
    "test_es_passport_recognizer.py": "passport",
    "test_it_passport_recognizer.py": "passport",
    "test_in_passport_recognizer.py": "passport",
    "test_kr_passport_recognizer.py": "passport",
}


def show(git_dir, commit, path):
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout.decode("utf-8")


def synth(git_dir):
    path = "data/synth_dataset_v2.json"
    for i, doc in enumerate(json.loads(show(git_dir, RESEARCH_COMMIT, path))):
        text = doc["full_text"]
        spans = [
            {
                "kind": SYNTH_KINDS[s["entity_type"]],
                "start": s["start_position"],
                "end": s["end_position"],
                "value": s["entity_value"],
            }
            for s in doc["spans"]
            if s["entity_type"] in SYNTH_KINDS
        ]
        other = sorted({s["entity_type"] for s in doc["spans"] if s["entity_type"] not in SYNTH_KINDS})
        yield {
            "text": text,
            "spans": spans,
            # Unlabelled documents are negatives; documents with only other
            # labels (organisations, places, dates) are neither.
            "negative": not doc["spans"],
            "other_labels": other,
            "source": f"microsoft/presidio-research@{RESEARCH_COMMIT[:12]}:{path}#{i}",
        }


def parametrize_cases(tree):
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"):
                continue
            try:
                names = [n.strip() for n in ast.literal_eval(dec.args[0]).split(",")]
                rows = ast.literal_eval(dec.args[1])
            except (ValueError, IndexError, SyntaxError):
                continue
            if names[:2] != ["text", "expected_len"] or "expected_positions" not in names:
                continue
            for row in rows:
                yield dict(zip(names, row))


def recognizer_tests(git_dir):
    for name, kind in RECOGNIZER_TESTS.items():
        path = f"presidio-analyzer/tests/{name}"
        tree = ast.parse(show(git_dir, PRESIDIO_COMMIT, path))
        for j, case in enumerate(parametrize_cases(tree)):
            text = case["text"]
            if not isinstance(text, str):
                continue
            spans = [
                {"kind": kind, "start": s, "end": e, "value": text[s:e]}
                for (s, e) in (case["expected_positions"] or ())
            ]
            yield {
                "text": text,
                "spans": spans,
                "negative": case["expected_len"] == 0,
                "other_labels": [],
                "source": f"microsoft/presidio@{PRESIDIO_COMMIT[:12]}:{path}#{j}",
            }


def main():
    for doc in synth(sys.argv[1]):
        print(json.dumps(doc, ensure_ascii=False))
    for doc in recognizer_tests(sys.argv[2]):
        print(json.dumps(doc, ensure_ascii=False))


if __name__ == "__main__":
    main()
