"""The item catalog: K items with structured features and a short text per item.

The features are what the SCM's item-level nodes read (``type: catalog, field: ...``); the
texts render the same features in words ("Lightweight running shoe by Brand 7, premium
price, rated 4.6"), so a text encoder that reads them sees what drives the users' responses.
Everything is drawn from one seeded generator: the same (n_items, seed, settings) give the
same catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

TOPICS = (
    ("running shoe", ("Lightweight", "Cushioned", "Trail")),
    ("rain jacket", ("Waterproof", "Packable", "Insulated")),
    ("coffee grinder", ("Burr", "Compact", "Electric")),
    ("mystery novel", ("Gripping", "Classic", "Award-winning")),
    ("wireless headphones", ("Noise-cancelling", "Over-ear", "Sporty")),
    ("yoga mat", ("Non-slip", "Extra-thick", "Travel")),
    ("board game", ("Strategy", "Family", "Party")),
    ("hiking backpack", ("Ultralight", "Rugged", "Daypack")),
    ("desk lamp", ("Dimmable", "Minimalist", "LED")),
    ("cookbook", ("Vegetarian", "Quick-meals", "Baking")),
    ("smartwatch", ("Fitness", "Rugged", "Slim")),
    ("kitchen knife", ("Chef's", "Japanese", "Forged")),
    ("sci-fi novel", ("Epic", "Cyberpunk", "Space-opera")),
    ("camping tent", ("Two-person", "Family", "Ultralight")),
    ("bluetooth speaker", ("Portable", "Waterproof", "Bass-heavy")),
    ("office chair", ("Ergonomic", "Mesh", "Executive")),
)
PRICE_TIERS = ("budget", "mid-range", "premium")


class ItemTexts(Sequence):
    """The K item texts, rendered on access from the item's features (a catalog of 10^6 items
    costs its feature arrays, not 10^6 strings). A ``Sequence[str]``: ``texts[k]``, slices,
    ``len``, iteration; ``list(texts)`` materializes them."""

    def __init__(self, topic, adjective, brand, tier, rating, bestseller):
        self._cols = (topic, adjective, brand, tier, rating, bestseller)

    def __len__(self) -> int:
        return len(self._cols[0])

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        topic, adjective, brand, tier, rating, bestseller = (c[k].item() for c in self._cols)
        name, adjectives = TOPICS[topic]
        text = f"{adjectives[adjective]} {name} by Brand {brand}, {PRICE_TIERS[tier]} price, rated {rating:.1f}"
        return text + ", bestseller" if bestseller else text

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"ItemTexts({len(self)} items, e.g. {self[0]!r})"


@dataclass(frozen=True)
class _Population:
    """How a catalog's items were drawn, kept so that new items (churn) come from the same
    population: the topic centres, the spread, and the base catalog's standardization."""

    centres: np.ndarray
    n_brands: int
    topic_spread: float
    moments: dict[str, tuple[float, float]]  # feature -> (mean, sd) of the base catalog's raw values
    bestseller_log_pop: float                # log popularity above which an item is a bestseller


def _draw_columns(rng: np.random.Generator, n_items: int, centres: np.ndarray, n_brands: int,
                  topic_spread: float) -> dict[str, np.ndarray]:
    """Raw item columns, drawn in a fixed order (the base catalog's numbers depend on it)."""
    n_topics, topic_dim = centres.shape
    topic = rng.integers(n_topics, size=n_items)
    topic_vec = centres[topic] + topic_spread * rng.normal(size=(n_items, topic_dim)) / np.sqrt(topic_dim)
    brand = rng.integers(n_brands, size=n_items)
    log_price = rng.normal(3.5, 0.6, size=n_items)
    rating = np.clip(rng.normal(4.0, 0.5, size=n_items), 1.0, 5.0).round(1)
    log_pop = rng.normal(0.0, 1.0, size=n_items)
    adjective = rng.integers(3, size=n_items)
    return dict(topic=topic, topic_vec=topic_vec, brand=brand, log_price=log_price, rating=rating, log_pop=log_pop,
                adjective=adjective)


@dataclass(frozen=True)
class Catalog:
    """K items: structured features (``features``, name -> (K, d) float64) and ``texts``.

    Features (all (K, d)):
      topic_vec     (K, topic_dim)  item position in taste space (topic centre + item noise)
      topic_onehot  (K, n_topics)   one-hot topic
      price         (K, 1)          standardized log price (0 = median item)
      quality       (K, 1)          standardized rating
      popularity    (K, 1)          standardized log popularity
    Raw values for people: ``topic`` (K,) int, ``brand`` (K,) int, ``price_usd`` (K,),
    ``rating`` (K,) in [1, 5], ``popularity_raw`` (K,) in (0, 1]. ``item_id`` (K,): which item
    fills each slot (0..K-1 at first; a new item from :meth:`replace` gets the next free id).
    """

    topic: np.ndarray
    brand: np.ndarray
    price_usd: np.ndarray
    rating: np.ndarray
    popularity_raw: np.ndarray
    features: dict[str, np.ndarray]
    texts: Sequence[str] = field(repr=False)  # ItemTexts: rendered on access
    item_id: np.ndarray | None = field(default=None, repr=False)
    population: _Population | None = field(default=None, repr=False)
    raw: dict[str, np.ndarray] | None = field(default=None, repr=False)  # the columns drawn (for replace)

    @property
    def n_items(self) -> int:
        return len(self.texts)

    #: the features a reward model shares across items through (``topic_onehot`` is left out:
    #: it is the cluster of ``topic_vec``, 8 more columns that say nothing new)
    ITEM_FEATURES = ("topic_vec", "price", "quality", "popularity")

    def item_features(self) -> np.ndarray:
        """The item side of a reward model: :data:`ITEM_FEATURES` side by side, (K, 11) float64."""
        return np.concatenate([np.asarray(self.features[k], dtype=np.float64) for k in self.ITEM_FEATURES], axis=1)

    @classmethod
    def generate(
        cls,
        n_items: int,
        seed: int = 0,
        *,
        n_topics: int = 8,
        topic_dim: int = 8,
        n_brands: int = 20,
        topic_spread: float = 0.35,
    ) -> "Catalog":
        """Draw a catalog of ``n_items`` items from ``seed``."""
        if n_items < 1:
            raise ValueError(f"catalog.n_items: must be >= 1, got {n_items}")
        if not 1 <= n_topics <= len(TOPICS):
            raise ValueError(f"catalog.n_topics: must be in [1, {len(TOPICS)}], got {n_topics}")
        if topic_dim < 1:
            raise ValueError(f"catalog.topic_dim: must be >= 1, got {topic_dim}")
        if n_brands < 1:
            raise ValueError(f"catalog.n_brands: must be >= 1, got {n_brands}")
        rng = np.random.default_rng([seed, 0xCA7])
        centres = rng.normal(size=(n_topics, topic_dim))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        cols = _draw_columns(rng, n_items, centres, n_brands, topic_spread)
        raw = {"price": cols["log_price"], "quality": cols["rating"], "popularity": cols["log_pop"]}
        moments = {k: (float(v.mean()), float(v.std())) for k, v in raw.items()}
        pop_rank = np.argsort(np.argsort(-cols["log_pop"]))
        top = pop_rank < max(1, n_items // 10)
        threshold = float(cols["log_pop"][top].min())
        population = _Population(centres, n_brands, topic_spread, moments, threshold)
        return cls._build(cols, top, np.arange(n_items), population)

    @classmethod
    def _build(cls, cols: dict[str, np.ndarray], bestseller: np.ndarray, item_id: np.ndarray,
               population: _Population) -> "Catalog":
        def standardize(name: str, v: np.ndarray) -> np.ndarray:
            mean, sd = population.moments[name]
            return ((v - mean) / (sd if sd > 0 else 1.0))[:, None]

        n_topics = population.centres.shape[0]
        price = standardize("price", cols["log_price"])
        tiers = np.digitize(price[:, 0], [-0.5, 0.5])
        texts = ItemTexts(cols["topic"], cols["adjective"], cols["brand"], tiers, cols["rating"], bestseller)
        features = {
            "topic_vec": cols["topic_vec"],
            "topic_onehot": np.eye(n_topics)[cols["topic"]],
            "price": price,
            "quality": standardize("quality", cols["rating"]),
            "popularity": standardize("popularity", cols["log_pop"]),
        }
        return cls(
            topic=cols["topic"],
            brand=cols["brand"],
            price_usd=np.exp(cols["log_price"]).round(2),
            rating=cols["rating"],
            popularity_raw=1.0 / (1.0 + np.exp(-cols["log_pop"])),
            features=features,
            texts=texts,
            item_id=item_id,
            population=population,
            raw=cols,
        )

    def replace(self, slots: np.ndarray, rng: np.random.Generator, first_id: int) -> "Catalog":
        """A catalog with the items in ``slots`` retired and new items in their places, drawn
        from the same population (topic centres, price/rating/popularity distributions, the
        base catalog's standardization), with texts; their ids are ``first_id, first_id + 1, ...``."""
        pop = self.population
        if pop is None:
            raise ValueError("catalog: only a generated catalog (Catalog.generate) can draw new items")
        slots = np.asarray(slots, dtype=np.int64)
        new = _draw_columns(rng, len(slots), pop.centres, pop.n_brands, pop.topic_spread)
        cols = self._columns()
        for k, v in new.items():
            cols[k] = cols[k].copy()
            cols[k][slots] = v
        bestseller = np.asarray(self.texts._cols[5], dtype=bool).copy()
        bestseller[slots] = new["log_pop"] >= pop.bestseller_log_pop
        item_id = self.item_id.copy()
        item_id[slots] = first_id + np.arange(len(slots))
        return self._build(cols, bestseller, item_id, pop)

    def _columns(self) -> dict[str, np.ndarray]:
        """The raw columns this catalog was built from."""
        return dict(self.raw)
