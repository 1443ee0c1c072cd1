from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def spike() -> dict[str, Any]:
    return {
        "spike_id": "5g-security:1700000000",
        "topic": "5g-security",
        "state": "started",
        "window_start": 1_700_000_000.0,
        "window_end": 1_700_003_600.0,
        "count": 7,
        "baseline": 1.5,
        "ratio": 4.67,
        "score": 4.5,
        "detected_at": 1_700_001_000.0,
        "top_stories": [
            {
                "article_id": "a1",
                "story_id": "s1",
                "title": "US warns Germany over Huawei in 5G",
                "url": "https://news.example/a1",
                "source": "Reuters",
                "published": 1_700_000_100.0,
            },
            {
                "article_id": "a2",
                "story_id": "s2",
                "title": "Evil <script>alert(1)</script>\r\nBcc: victim@example.org",
                "url": "javascript:alert(1)",
                "source": "Wire",
                "published": 1_700_000_200.0,
            },
        ],
        "top_terms": ["Huawei", "5G"],
        "recent_counts": [
            {"start": 1_700_000_000.0 - 3600 * i, "count": 3 - i} for i in range(3, -1, -1)
        ],
    }
