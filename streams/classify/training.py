"""Train the topic model (streams/classify/model.py) from labelled articles: one L2-regularised
logistic regression per topic over word presence (scikit-learn, imported here only: training is
offline, prediction needs none of it).

Articles are cleaned as the stream cleans them (``evaluate.cleaned_fields``), so the words the
model was trained on are the words it sees at run time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from streams.classify.evaluate import LabelledArticle, cleaned_fields
from streams.classify.model import DEFAULT_THRESHOLD, TopicModel, TopicWeights, words

DEFAULT_C = 3.0  # inverse regularisation strength (5-fold CV on the tuning part, DEVSET.md)
DEFAULT_MIN_ARTICLES = 2  # a word must occur in this many training articles to get a weight
MIN_WEIGHT = 1e-4  # smaller weights are dropped from the file


def article_words(article: LabelledArticle) -> frozenset[str]:
    title, text = cleaned_fields(article.title, article.text)
    return words(title, text)


def train_model(
    articles: list[LabelledArticle],
    topics: Iterable[str],
    threshold: float = DEFAULT_THRESHOLD,
    c: float = DEFAULT_C,
    min_articles: int = DEFAULT_MIN_ARTICLES,
    trained_on: str = "",
) -> TopicModel:
    """A model with one logistic regression per topic in ``topics``, each needing positive and
    negative examples among ``articles``."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    features = [article_words(article) for article in articles]
    counts = Counter(word for found in features for word in found)
    vocabulary = sorted(word for word, n in counts.items() if n >= min_articles)
    index = {word: n for n, word in enumerate(vocabulary)}
    rows, cols = [], []
    for row, found in enumerate(features):
        for word in found:
            col = index.get(word)
            if col is not None:
                rows.append(row)
                cols.append(col)
    matrix = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(articles), len(vocabulary)))
    trained = {}
    for name in topics:
        target = np.array([name in article.labels for article in articles], dtype=int)
        if target.min() == target.max():
            raise ValueError(f"topic {name!r}: needs labelled positive and negative articles")
        regression = LogisticRegression(C=c, solver="liblinear", max_iter=1000)
        regression.fit(matrix, target)
        weights = {
            vocabulary[col]: float(weight)
            for col, weight in enumerate(regression.coef_[0])
            if abs(weight) >= MIN_WEIGHT
        }
        trained[name] = TopicWeights(float(regression.intercept_[0]), threshold, weights)
    return TopicModel(trained, trained_on=trained_on)
