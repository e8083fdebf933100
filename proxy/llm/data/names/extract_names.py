#!/usr/bin/env python3
"""Extract the first- and last-name lists that promptwall's name detector
embeds (proxy/llm/src/detect/names.rs, include_str!) from the Python
package Faker (MIT, Copyright (c) 2012 Daniele Faraglia; see LICENSE-faker).

    pip download --no-deps -d /tmp/fk faker==40.63.0
    (cd /tmp/fk && unzip -q faker-40.63.0-py3-none-any.whl)
    apt-get install wamerican    # SCOWL word list, /usr/share/dict/american-english
    python3 extract_names.py /tmp/fk /usr/share/dict/american-english

Writes first_names.txt and last_names.txt here: one name per line, sorted,
deduplicated, single tokens of letters (hyphens and apostrophes inside)
from the locales below; and common_first.txt / common_last.txt: the listed
names that are also lowercase English words in the SCOWL list (`Grace`,
`Mark`, `Page`, `Swift`), which the detector trusts less. Nothing is
downloaded at build or run time.
"""
import importlib
import re
import sys
from pathlib import Path

LOCALES = (
    "en_US en_GB en_IE de_DE de_AT de_CH fr_FR fr_CH fr_BE es_ES es_MX es_AR "
    "it_IT nl_NL nl_BE pt_PT pt_BR pl_PL sv_SE da_DK no_NO fi_FI cs_CZ hu_HU ro_RO "
    # The rest of Europe in Latin script, and English elsewhere.
    "is_IS hr_HR sl_SI sk_SK et_EE lv_LV lt_LT ga_IE de_LU fr_CA es_CL es_CO en_NZ"
).split()
FIRST = ("first_names", "first_names_male", "first_names_female")
LAST = ("last_names", "last_names_male", "last_names_female", "male_last_names", "unisex_last_names")
TOKEN = re.compile(r"^[^\W\d_]+(?:['\-][^\W\d_]+)*$")


def names(provider, attrs):
    out = set()
    for a in attrs:
        v = getattr(provider, a, None)
        # Some locales compute lists in properties; only data counts here.
        if not v or not isinstance(v, (list, tuple, dict)):
            continue
        for n in v:
            for part in n.split():
                if len(part) >= 2 and TOKEN.match(part) and part[0].isupper():
                    out.add(part)
    return out


def main():
    sys.path.insert(0, sys.argv[1])
    first, last = set(), set()
    for loc in LOCALES:
        p = importlib.import_module(f"faker.providers.person.{loc}").Provider
        first |= names(p, FIRST)
        last |= names(p, LAST)
    here = Path(__file__).parent
    (here / "first_names.txt").write_text("\n".join(sorted(first)) + "\n", encoding="utf-8")
    (here / "last_names.txt").write_text("\n".join(sorted(last)) + "\n", encoding="utf-8")
    words = {w.strip() for w in open(sys.argv[2], encoding="utf-8") if w.strip().islower()}
    common_first = sorted(n for n in first if n.lower() in words)
    common_last = sorted(n for n in last if n.lower() in words)
    (here / "common_first.txt").write_text("\n".join(common_first) + "\n", encoding="utf-8")
    (here / "common_last.txt").write_text("\n".join(common_last) + "\n", encoding="utf-8")
    # Country names (en_US) for the address detector's `Estonia 62488` lines.
    countries = importlib.import_module("faker.providers.address.en_US").Provider.countries
    (here / "countries.txt").write_text("\n".join(sorted(set(countries))) + "\n", encoding="utf-8")
    print(len(first), "first names,", len(last), "last names,", len(common_first), "+", len(common_last), "common words")


if __name__ == "__main__":
    main()
