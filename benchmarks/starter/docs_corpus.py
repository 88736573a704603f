"""Real offline text from Debian packages: man pages (NAME line -> body) and Python docs sections.

Downloads ``manpages``, ``manpages-dev`` and ``python3.11-doc`` with ``apt-get download`` (no root needed) and
unpacks them with ``dpkg-deb -x`` into a cache folder. Parsers are deliberately small: a troff stripper for
man pages and a reST section splitter for the Python docs.
"""

from __future__ import annotations

import gzip
import re
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

PACKAGES = (
    "manpages",
    "manpages-dev",
    "python3.11-doc",
    "debian-reference-en",
    "debian-handbook",
    "bash-doc",
    "postgresql-doc-15",
)
HTML_SOURCES = {  # corpus name -> glob under the unpacked root (English only)
    "debian-reference": "usr/share/debian-reference/*.en.html",
    "debian-handbook": "usr/share/doc/debian-handbook/html/en-US/*.html",
    "bash": "usr/share/doc/bash-doc/bashref.html",
    "postgresql": "usr/share/doc/postgresql-doc-15/html/*.html",
}
PY_SOURCES = "usr/share/doc/python3.11/html/_sources"


def fetch(cache: Path) -> Path:
    """Download and unpack the packages into ``cache/root`` once; return the root."""
    root = cache / "root"
    if (root / PY_SOURCES / "faq").is_dir() and (root / "usr/share/doc/postgresql-doc-15").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=cache, check=True)
    for deb in sorted(cache.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


# ------------------------------------------------------------------------------------------------ man pages
@dataclass
class ManPage:
    name: str
    names: str
    summary: str
    body: str


_FONT = re.compile(r"\\f(\(..|\[[^\]]*\]|.)")
_ESCAPES = [
    (re.compile(r"\\\((em|en)"), "-"),
    (re.compile(r"\\\(aq"), "'"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\(bu"), "*"),
    (re.compile(r"\\\(.."), ""),
    (re.compile(r"\\\*\(.."), ""),
    (re.compile(r"\\\*."), ""),
    (re.compile(r"\\\[[^\]]*\]"), ""),
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\[&|^%:]"), ""),
    (re.compile(r"\\ "), " "),
    (re.compile(r"\\s[-+]?\d"), ""),
    (re.compile(r"\\c"), ""),
]
_FONT_MACROS = {"B", "I", "BR", "RB", "BI", "IB", "IR", "RI", "SM", "SB"}


def _inline(text: str) -> str:
    text = _FONT.sub("", text)
    for pattern, repl in _ESCAPES:
        text = pattern.sub(repl, text)
    return text


def _macro_args(rest: str) -> str:
    parts = re.findall(r'"([^"]*)"|(\S+)', rest)
    return "".join(a or b for a, b in parts)


def parse_man(path: Path) -> ManPage | None:
    """NAME line and the text of the other sections, or ``None`` for ``.so`` redirects and empty pages."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            raw = handle.read()
    except OSError:
        return None
    sections: dict[str, list[str]] = {}
    current = None
    in_table = False
    for line in raw.splitlines():
        if line.startswith(".so "):
            return None
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if line.startswith(".TS"):
            in_table = True
            continue
        if line.startswith(".TE"):
            in_table = False
            continue
        if in_table:
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].partition(" ")
            if macro == "SH":
                current = _macro_args(rest).strip().upper()
                sections.setdefault(current, [])
                continue
            if current is None:
                continue
            if macro == "SS":
                sections[current].append(_inline(_macro_args(rest)) + ".")
            elif macro in _FONT_MACROS:
                sep = "" if macro in ("BR", "RB", "BI", "IB", "IR", "RI") else " "
                args = re.findall(r'"([^"]*)"|(\S+)', rest)
                sections[current].append(_inline(sep.join(a or b for a, b in args)))
            continue
        if current is not None:
            sections[current].append(_inline(line))
    name_lines = " ".join(sections.get("NAME", [])).strip()
    if " - " not in name_lines:
        return None
    names, summary = name_lines.split(" - ", 1)
    body_parts = []
    for title in ("DESCRIPTION", "SYNOPSIS", "OPTIONS", "RETURN VALUE", "NOTES"):
        text = " ".join(" ".join(sections.get(title, [])).split())
        if text:
            body_parts.append(text)
    body = " ".join(body_parts)
    if len(body) < 80:
        return None
    return ManPage(path.name.split(".")[0], names.strip(), summary.strip(), body)


def man_pages(root: Path) -> list[ManPage]:
    pages = []
    for path in sorted((root / "usr/share/man").glob("man*/*.gz")):
        if path.is_symlink():
            continue
        page = parse_man(path)
        if page is not None:
            pages.append(page)
    return pages


# --------------------------------------------------------------------------------------------- python docs
@dataclass
class DocSection:
    file: str
    title: str
    heading: str
    text: str


_UNDERLINE = re.compile(r"^([=\-~^*+#\"'`:.])\1{2,}\s*$")
_ROLE = re.compile(r":[a-zA-Z:]+:`~?!?([^`<]*?)(?:\s*<[^>]*>)?`")
_LINK = re.compile(r"`([^`<]*?)\s*<[^>]*>`_{1,2}")
_LITERAL = re.compile(r"``([^`]*)``")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+([\w:-]+)::\s*(.*)$")
_SKIP_DIRECTIVES = {
    "toctree",
    "contents",
    "only",
    "index",
    "highlight",
    "sectionauthor",
    "moduleauthor",
    "testsetup",
    "testcleanup",
    "include",
    "image",
    "figure",
    "raw",
    "tabularcolumns",
    "literalinclude",
    "productionlist",
    "audit-event",
    "impl-detail",
    "seealso",
}


def clean_rst(text: str) -> str:
    """reST markup to plain text: roles, links and literals keep their text, comments and options go."""
    out = []
    skip_indent = None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if stripped and indent <= skip_indent:
                skip_indent = None
            else:
                continue
        directive = _DIRECTIVE.match(line)
        if directive:
            name, argument = directive.groups()
            if name in _SKIP_DIRECTIVES:
                skip_indent = indent
                continue
            if argument:
                out.append(argument)
            continue
        if stripped.startswith(".. ") or stripped == "..":
            skip_indent = indent  # a comment or target
            continue
        if re.match(r"^\s*:[\w-]+:(\s|$)", line):
            continue  # directive option
        out.append(line)
    text = "\n".join(out)
    text = _ROLE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    text = text.replace("**", "").replace("::", ":")
    return " ".join(text.split())


def split_sections(path: Path, root: Path) -> list[DocSection]:
    """One :class:`DocSection` per heading of an ``.rst.txt`` file (the heading removed from the text)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    headings: list[tuple[int, int, str]] = []  # (start line of heading, first body line, heading text)
    i = 0
    while i < len(lines) - 1:
        text, under = lines[i], lines[i + 1]
        if (
            text.strip()
            and not _UNDERLINE.match(text)
            and _UNDERLINE.match(under)
            and len(under.strip()) >= len(text.strip())
            and not text.startswith(" ")
        ):
            start = i - 1 if i > 0 and _UNDERLINE.match(lines[i - 1]) else i
            headings.append((start, i + 2, text.strip()))
            i += 2
            continue
        i += 1
    sections = []
    title = headings[0][2] if headings else path.stem
    relative = str(path.relative_to(root))
    for index, (_, body_start, heading) in enumerate(headings):
        end = headings[index + 1][0] if index + 1 < len(headings) else len(lines)
        body = clean_rst("\n".join(lines[body_start:end]))
        if len(body) >= 40:
            sections.append(DocSection(relative, title, clean_rst(heading), body))
    return sections


def python_sections(root: Path, *, faq: bool) -> list[DocSection]:
    """Sections of the FAQ files (``faq=True``) or of every other file (``faq=False``)."""
    base = root / PY_SOURCES
    out = []
    for path in sorted(base.rglob("*.rst.txt")):
        is_faq = path.relative_to(base).parts[0] == "faq"
        if is_faq == faq:
            out.extend(split_sections(path, base))
    return out


def faq_questions(root: Path) -> list[DocSection]:
    """FAQ entries: question headings (ending in '?') with their answer text."""
    return [s for s in python_sections(root, faq=True) if s.heading.rstrip().endswith("?")]


# ---------------------------------------------------------------------------------------------------- HTML
_HEADINGS = {"h1", "h2", "h3", "h4", "h5"}
_SKIP_TAGS = {"script", "style", "head", "nav"}
_SKIP_CLASSES = ("navheader", "navfooter", "toc", "footer", "header", "sphinxsidebar", "related", "breadcrumb")
_VOID = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source"}


class _SectionParser(HTMLParser):
    """Collect (heading, text) pairs: text between one h1-h5 heading and the next."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[tuple[str, list[str]]] = [("", [])]
        self.stack: list[tuple[str, bool]] = []  # (tag, skipping)
        self.heading: list[str] | None = None

    @property
    def skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        classes = dict(attrs).get("class") or ""
        skip = self.skipping or tag in _SKIP_TAGS or any(c in classes.split() for c in _SKIP_CLASSES)
        self.stack.append((tag, skip))
        if tag in _HEADINGS and not skip:
            self.heading = []

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag == tag:
                break
        if tag in _HEADINGS and self.heading is not None:
            self.sections.append((" ".join("".join(self.heading).split()), []))
            self.heading = None

    def handle_data(self, data):
        if self.skipping:
            return
        if self.heading is not None:
            self.heading.append(data)
        else:
            self.sections[-1][1].append(data)


_NUMBERING = re.compile(r"^(?:(?:Chapter|Appendix|Section)\s+)?(?:\d+(?:\.\d+)*\.?|[A-Z]\.(?:\d+\.?)*)\s+")


def html_sections(path: Path, corpus: str) -> list[DocSection]:
    """Sections of one HTML file (heading numbering and the pilcrow removed)."""
    parser = _SectionParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    out = []
    title = ""
    for heading, parts in parser.sections:
        heading = _NUMBERING.sub("", heading.replace("\u00b6", "").replace("#", "")).strip()
        title = title or heading
        text = " ".join(" ".join(parts).split())
        if heading and len(text) >= 40:
            out.append(DocSection(f"{corpus}:{path.name}", title, heading, text))
    return out


def all_html_sections(root: Path) -> list[DocSection]:
    """Sections of every HTML corpus in :data:`HTML_SOURCES`."""
    out = []
    for corpus, pattern in HTML_SOURCES.items():
        for path in sorted(root.glob(pattern)):
            out.extend(html_sections(path, corpus))
    return out
