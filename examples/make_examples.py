"""Generate the sample PDFs in this folder with pymupdf (text, a table, a vector chart, a scanned page).

Run from the repository root:  python examples/make_examples.py
The output is deterministic, so re-running it leaves the committed files unchanged.
"""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import pymupdf
from PIL import Image, ImageFilter

HERE = Path(__file__).resolve().parent
A4 = pymupdf.paper_rect("a4")
MARGIN = 56


def _new(title: str, author: str = "metaembed_rag examples") -> pymupdf.Document:
    doc = pymupdf.open()
    doc.set_metadata({"title": title, "author": author, "creator": "examples/make_examples.py", "producer": ""})
    return doc


def _save(doc: pymupdf.Document, name: str) -> Path:
    path = HERE / name
    doc.save(path, garbage=4, deflate=True, no_new_id=True)
    doc.close()
    return path


def _text_page(doc: pymupdf.Document, heading: str, paragraphs: list[str]) -> pymupdf.Page:
    page = doc.new_page(width=A4.width, height=A4.height)
    html = f"<h2>{heading}</h2>" + "".join(f"<p>{p}</p>" for p in paragraphs)
    css = "* {font-family: sans-serif; font-size: 11pt;} h2 {font-size: 17pt;} p {margin-bottom: 8pt;}"
    page.insert_htmlbox(pymupdf.Rect(MARGIN, MARGIN, A4.width - MARGIN, A4.height - MARGIN), html, css=css)
    return page


def field_guide() -> Path:
    doc = _new("A field guide to garden birds", "Ada Fieldfare")
    _text_page(
        doc,
        "A field guide to garden birds",
        [
            "The European robin is a small songbird with an orange-red breast and face. Robins sing almost all "
            "year round, even at night near street lights, and defend their territory fiercely against rivals.",
            "The blue tit is recognised by its blue cap, yellow underparts and white cheeks. It feeds acrobatically "
            "on thin twigs and readily uses nest boxes with a 25 mm entrance hole.",
            "The great tit is larger, with a black head, white cheeks and a black stripe down a yellow breast. "
            "Its two-note call, often written as 'teacher, teacher', is one of the first songs heard in spring.",
            "The house sparrow lives in noisy colonies close to people. Males have a grey crown and a black bib; "
            "numbers have fallen sharply in many cities since the 1970s.",
        ],
    )
    _text_page(
        doc,
        "Feeding birds through the winter",
        [
            "Offer sunflower hearts, suet balls and fresh water when the ground is frozen. Clean feeders every two "
            "weeks with hot soapy water to stop the spread of disease such as trichomonosis.",
            "Place feeders two metres from dense cover: close enough for small birds to escape sparrowhawks, far "
            "enough that cats cannot ambush them. Never put out salted peanuts or bread soaked in milk.",
        ],
    )
    return _save(doc, "field-guide.pdf")


def sales_table() -> Path:
    doc = _new("Quarterly sales by region, 2025", "Finance team")
    rows = [
        ("Region", "Q1", "Q2", "Q3", "Q4", "Total"),
        ("North", "1,240", "1,310", "1,475", "1,820", "5,845"),
        ("South", "980", "1,045", "1,130", "1,290", "4,445"),
        ("East", "1,505", "1,390", "1,620", "1,710", "6,225"),
        ("West", "760", "845", "905", "1,160", "3,670"),
        ("All regions", "4,485", "4,590", "5,130", "5,980", "20,185"),
    ]
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows[1:])
    html = (
        "<h2>Quarterly sales by region, 2025</h2>"
        "<p>Revenue in thousands of euros. The fourth quarter was the strongest in every region, driven by "
        "holiday demand; the East region had the highest annual revenue.</p>"
        f"<table><tr>{head}</tr>{body}</table>"
    )
    css = (
        "* {font-family: sans-serif; font-size: 11pt;} h2 {font-size: 17pt;}"
        "table {border-collapse: collapse;} th, td {border: 1px solid black; padding: 4pt 10pt; text-align: right;}"
    )
    page = doc.new_page(width=A4.width, height=A4.height)
    page.insert_htmlbox(pymupdf.Rect(MARGIN, MARGIN, A4.width - MARGIN, A4.height - MARGIN), html, css=css)
    return _save(doc, "sales-table.pdf")


def rainfall_chart() -> Path:
    doc = _new("Monthly rainfall in Bergen, 2024", "Weather desk")
    page = doc.new_page(width=A4.width, height=A4.height)
    page.insert_text((MARGIN, 80), "Monthly rainfall in Bergen, 2024 (millimetres)", fontsize=17, fontname="hebo")
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    rain = [260, 190, 170, 110, 95, 105, 140, 185, 255, 285, 270, 290]
    left, bottom, height, bar = MARGIN + 30, 460, 320, 30
    scale = height / 300
    shape = page.new_shape()
    shape.draw_line((left, bottom), (left + 12 * (bar + 8) + 8, bottom))
    shape.draw_line((left, bottom), (left, bottom - height))
    shape.finish(color=(0, 0, 0), width=1)
    for tick in range(0, 301, 50):
        y = bottom - tick * scale
        shape.draw_line((left - 4, y), (left, y))
        page.insert_text((left - 28, y + 3), str(tick), fontsize=8)
    shape.finish(color=(0, 0, 0), width=0.8)
    for i, (month, value) in enumerate(zip(months, rain, strict=True)):
        x = left + 8 + i * (bar + 8)
        shape.draw_rect(pymupdf.Rect(x, bottom - value * scale, x + bar, bottom))
        shape.finish(color=(0.1, 0.2, 0.5), fill=(0.3, 0.5, 0.85), width=0.5)
        page.insert_text((x + 3, bottom + 14), month, fontsize=9)
        page.insert_text((x + 4, bottom - value * scale - 4), str(value), fontsize=8)
    shape.commit()
    page.insert_text(
        (MARGIN, bottom + 50),
        "Autumn and winter are the wettest seasons; May was the driest month with 95 mm of rain.",
        fontsize=11,
    )
    return _save(doc, "rainfall-chart.pdf")


def scanned_memo() -> Path:
    """A memo typed on a page, rendered to a grey, slightly rotated, noisy image: a page with no text layer."""
    typed = pymupdf.open()
    page = typed.new_page(width=420, height=595)  # A5
    memo = (
        "MEMO\n\nTo: all staff\nFrom: facilities\n\n"
        "The office will be closed on Friday 14 March for the\n"
        "annual boiler inspection. Please take your laptop home\n"
        "on Thursday evening and switch off the heaters in the\n"
        "meeting rooms before you leave.\n\n"
        "Questions to the front desk, extension 2040."
    )
    page.insert_text((40, 70), memo, fontsize=10.5, fontname="cour", lineheight=1.5)
    pixmap = page.get_pixmap(dpi=150, colorspace=pymupdf.csGRAY)
    typed.close()
    image = Image.frombytes("L", (pixmap.width, pixmap.height), pixmap.samples)
    image = image.rotate(0.7, resample=Image.Resampling.BICUBIC, fillcolor=255).filter(ImageFilter.GaussianBlur(0.6))
    rng = random.Random(5)
    pixels = image.load()
    for _ in range(4000):
        x, y = rng.randrange(image.width), rng.randrange(image.height)
        pixels[x, y] = rng.choice((120, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=55)
    doc = _new("", "")
    scan = doc.new_page(width=420, height=595)
    scan.insert_image(scan.rect, stream=buffer.getvalue())
    return _save(doc, "scanned-memo.pdf")


def main() -> int:
    for make in (field_guide, sales_table, rainfall_chart, scanned_memo):
        path = make()
        print(f"wrote {path.relative_to(HERE.parent)} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
