from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import sample_spike


@pytest.fixture
def spike() -> dict[str, Any]:
    return sample_spike(
        count=7,
        baseline=1.5,
        ratio=4.67,
        score=4.5,
        top_stories=[
            *sample_spike()["top_stories"],
            {
                "article_id": "a2",
                "story_id": "s2",
                "title": "Evil <script>alert(1)</script>\r\nBcc: victim@example.org",
                "url": "javascript:alert(1)",
                "source": "Wire",
                "published": 1_700_000_200.0,
            },
        ],
        recent_counts=[
            {"start": 1_700_000_000.0 - 3600 * i, "count": 3 - i} for i in range(3, -1, -1)
        ],
    )
