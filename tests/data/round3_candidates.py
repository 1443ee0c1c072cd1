"""Draw the candidate rows of round three (DEVSET.md, "Rows added in round three"): keyword pools
over ../shared/data/articles, rows already in devset.jsonl (by id or by headline) left out, a row
going to the first pool that matches it, samples drawn with one random.Random(3).

Run from the repository root: python tests/data/round3_candidates.py > /tmp/candidates.jsonl
The candidates are then read and labelled by hand (never by the classifier).
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

ARTICLES = Path("../shared/data/articles")
DEVSET = Path("tests/data/devset.jsonl")
SEED = 3
MAIN = ["reuters", "nyt-uschina", "guardian", "cnbc"]
ALL = [*MAIN, "huffpost", "reddit-news", "uci-news"]

VENDORS = r"huawei|\bzte\b|china mobile|china telecom|china unicom"
BAN = r"\bbans?\b|\bbanned\b|\bbanning\b"

# name, datasets, any of these patterns, none of these, how many to draw
POOLS: list[tuple[str, list[str], list[str], list[str], int]] = [
    (
        "vendor-network-no-ban",
        MAIN,
        [rf"({VENDORS}).*(\b5g\b|network|telecom|equipment|gear|carrier|operator|\bfcc\b)"],
        [BAN],
        95,
    ),
    (
        "operators",
        ALL,
        [
            r"\b(bt|vodafone|telefonica|deutsche telekom|softbank|kddi|docomo|telia|telenor|"
            r"telecom italia|verizon|at&t|t-mobile|sprint|telstra|orange)\b.*"
            r"(huawei|\bzte\b|nokia|ericsson|vendor|supplier)"
        ],
        [],
        35,
    ),
    (
        "export-company",
        ALL,
        [
            r"(huawei|\bzte\b|\bsmic\b|hikvision|semiconductor|\bchips?\b).*"
            r"(export|entity list|blacklist|licen[cs]e|supplier|supplies|shipment)",
            r"(export|entity list|blacklist|licen[cs]e|supplier|supplies|shipment).*"
            r"(huawei|\bzte\b|\bsmic\b|hikvision|semiconductor|\bchips?\b)",
        ],
        [],
        70,
    ),
    (
        "apps-and-suppliers",
        ALL,
        [r"tiktok|wechat|bytedance|kaspersky|hikvision|dahua|\bdji\b|chinese apps?\b"],
        [],
        50,
    ),
    (
        "telecom-security-no-vendor",
        ALL,
        [
            r"(\b5g\b|telecom|mobile network|phone mast|\bmasts?\b|cell tower|phone tower).*"
            r"(security|\bspy|espionage|\bhack|attack|sabotage|\brisk|vulnerab|arson|\bfire)",
            r"(security|\bspy|espionage|\bhack|attack|sabotage|\brisk|vulnerab|arson|\bfire).*"
            r"(\b5g\b|telecom|mobile network|phone mast|\bmasts?\b|cell tower|phone tower)",
        ],
        [VENDORS],
        40,
    ),
    ("huawei-other", ALL, [r"huawei|\bzte\b"], [], 150),
    (
        "trade-war",
        ALL,
        [
            r"(trade war|tariff|trade talks|trade deal).*(china|chinese|beijing)",
            r"(china|chinese|beijing).*(trade war|tariff|trade talks|trade deal)",
        ],
        [r"sanction"],
        40,
    ),
    ("5g-other", ALL, [r"\b5g\b"], [], 30),
    ("sanctions", ALL, [r"sanction|embargo|asset freeze|export control"], [], 50),
    ("ban-negatives", ALL, [rf"{BAN}|\bbarred\b|prohibit"], [], 40),
]
# A second stage, drawn after the first with the same generator among the rows it did not draw
# (any eligible row, matched by a first-stage pool or not): the first stage gave under 400 rows
# whose topic could be decided.
TOP_UP: list[tuple[str, list[str], list[str], list[str], int]] = [
    ("huawei-zte-more", ALL, [r"huawei|\bzte\b"], [], 80),
    (
        "telecom-other",
        ALL,
        [r"ericsson|nokia|telecom|spectrum|\bmasts?\b|broadband"],
        [r"huawei|\bzte\b"],
        30,
    ),
]


def content_of(row: dict) -> str:
    return f"{row['title']}\n{row.get('text') or ''}".lower()


def headline(title: str) -> str:
    return " ".join(title.lower().split())


def main() -> int:
    known_ids, known_titles = set(), set()
    for line in DEVSET.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)  # ids and headlines only: labels and texts are not read
        known_ids.add(row["id"])
        known_titles.add(headline(row["title"]))
    pools: dict[str, list[dict]] = {name: [] for name, *_ in POOLS}
    eligible: list[dict] = []
    seen_titles = set(known_titles)
    for dataset in ALL:
        path = ARTICLES / f"{dataset}.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            title = headline(row["title"])
            if row["id"] in known_ids or title in seen_titles or not title:
                continue
            content = content_of(row)
            eligible.append(row)
            seen_titles.add(title)
            for name, datasets, anyof, noneof, _ in POOLS:
                if dataset not in datasets:
                    continue
                if any(re.search(p, content, re.S) for p in anyof) and not any(
                    re.search(p, content, re.S) for p in noneof
                ):
                    pools[name].append(row)
                    break
    rng = random.Random(SEED)
    drawn_ids = set()
    for name, *_, count in POOLS:
        matched = sorted(pools[name], key=lambda row: row["id"])
        drawn = rng.sample(matched, min(count, len(matched)))
        print(f"{name}: matched {len(matched)}, drawn {len(drawn)}", file=sys.stderr)
        for row in drawn:
            drawn_ids.add(row["id"])
            print(json.dumps({**row, "pool": name}, ensure_ascii=False))
    for name, datasets, anyof, noneof, count in TOP_UP:
        matched = sorted(
            (
                row
                for row in eligible
                if row["dataset"] in datasets
                if row["id"] not in drawn_ids
                and any(re.search(p, content_of(row), re.S) for p in anyof)
                and not any(re.search(p, content_of(row), re.S) for p in noneof)
            ),
            key=lambda row: row["id"],
        )
        drawn = rng.sample(matched, min(count, len(matched)))
        print(f"{name} (top-up): matched {len(matched)}, drawn {len(drawn)}", file=sys.stderr)
        for row in drawn:
            drawn_ids.add(row["id"])
            print(json.dumps({**row, "pool": name}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
