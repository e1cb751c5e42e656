"""The customer import in Chromium: from the customer list to the upload, a bad file
refused next to its field, the preview, the import, the history. With
DESKBOOK_SHOTS=folder set, screenshots of each page at 1366 and 390 px go there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from extensions import db
from models import ImportBatch, ImportStatus
from tests.browser.test_browser import settle, sign_in
from tests.import_helpers import rows, xlsx_bytes

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("DESKBOOK_SHOTS")


@pytest.fixture
def locale():
    return "zh-CN"


def shoot(page, name: str) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=f"{SHOTS}/{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})


def test_import_from_the_customer_list(page, live_server, live_app, new_user, tmp_path):
    manager = new_user("manager")
    suffix = str(manager.id)
    sign_in(page, live_server, manager.username)
    page.goto("/customers")
    page.get_by_test_id("import-customers").click()
    settle(page)
    shoot(page, "upload")

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    page.locator("input[type=file]").set_input_files(str(empty))
    page.locator("#import-upload button[type=submit]").click()
    settle(page)
    expect(page.get_by_test_id("file-error")).to_be_visible()
    shoot(page, "upload-refused")

    data = [[f"导入{suffix}-{i}", *row[1:]] for i, row in enumerate(rows(8, start=int(suffix) * 100))]
    data += [["", "某公司", "123", "not-an-email", "未知阶段", "", ""]]
    good = tmp_path / f"客户{suffix}.xlsx"
    good.write_bytes(xlsx_bytes(data))
    page.locator("input[type=file]").set_input_files(str(good))
    page.locator("#import-upload button[type=submit]").click()
    settle(page)
    expect(page.get_by_test_id("import-counts")).to_be_visible()
    expect(page.get_by_test_id("import-preview").locator("tr.import-invalid")).to_have_count(1)
    shoot(page, "preview")

    batch_url = page.url
    batch_id = int(batch_url.rstrip("/").split("/")[-1])
    with live_app.app_context():  # the progress bar, as it looks while a large file runs
        batch = db.session.get(ImportBatch, batch_id)
        batch.status, batch.progress = ImportStatus.IMPORTING, 4
        db.session.commit()
    if SHOTS:
        page.goto(batch_url)
        expect(page.locator("#import-progress progress")).to_be_visible()
        shoot(page, "progress")
    with live_app.app_context():
        batch = db.session.get(ImportBatch, batch_id)
        batch.status, batch.progress = ImportStatus.READY, 9
        db.session.commit()
    page.goto(batch_url)
    page.get_by_test_id("confirm-import").click()
    settle(page)
    expect(page.get_by_test_id("import-summary")).to_be_visible()
    expect(page.get_by_test_id("undo-import")).to_be_visible()
    shoot(page, "done")

    page.goto("/customers/imports")
    expect(page.get_by_test_id("import-history")).to_contain_text(good.name)
    shoot(page, "history")
    # On a phone each import is a card: nothing runs off the right edge, the Undo
    # button is on screen.
    page.set_viewport_size({"width": 390, "height": 844})
    undo = page.get_by_test_id("import-history").get_by_role("button", name="撤销")
    expect(undo).to_be_visible()
    box = undo.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"/customers?q=导入{suffix}")
    expect(page.locator("#customer-results")).to_contain_text(f"导入{suffix}-1")
    shoot(page, "customers")


def test_a_choice_per_duplicate_on_the_preview(page, live_server, live_app, new_user, tmp_path):
    """Two duplicates of existing customers, one filled and one created anyway,
    chosen with the select on each row (a plain form post: no script needed)."""
    from services import customers

    manager = new_user("manager")
    suffix = str(manager.id)
    with live_app.app_context():
        from models import User

        author = db.session.get(User, manager.id)
        for i in range(2):
            customers.create_customer(author, customers.CustomerData(
                name=f"老客户{suffix}-{i}", phones=[("mobile", f"137{int(suffix):04d}{i:04d}")]))
        db.session.commit()
    data = [[f"老客户{suffix}-{i}", f"公司{i}", f"137{int(suffix):04d}{i:04d}", "", "", "", ""] for i in range(2)]
    data += [[f"新客户{suffix}", "", f"139{int(suffix):04d}0000", "", "", "", ""]]
    good = tmp_path / f"重复{suffix}.xlsx"
    good.write_bytes(xlsx_bytes(data))
    sign_in(page, live_server, manager.username)
    page.goto("/customers/import")
    page.locator("input[type=file]").set_input_files(str(good))
    page.locator("#import-upload button[type=submit]").click()
    settle(page)
    choices = page.get_by_test_id("import-duplicates")
    expect(choices.locator("select")).to_have_count(2)
    choices.locator("select[name=dup_2]").select_option("fill")
    choices.locator("select[name=dup_3]").select_option("create")
    shoot(page, "preview-duplicates")
    page.get_by_test_id("confirm-import").click()
    settle(page)
    expect(page.get_by_test_id("import-summary")).to_contain_text("新建客户 2 个")
    expect(page.get_by_test_id("import-per-row")).to_contain_text("第 2 行：补全空白字段")
    shoot(page, "done-duplicates")

    batch_url = page.url  # as it looks after its process died half-way (settled as interrupted)
    with live_app.app_context():
        from datetime import timedelta

        from models import utcnow

        batch = db.session.get(ImportBatch, int(batch_url.rstrip("/").split("/")[-1]))
        batch.status, batch.progress, batch.heartbeat_at = ImportStatus.IMPORTING, 2, utcnow() - timedelta(hours=1)
        db.session.commit()
    page.goto("/customers/imports")
    expect(page.get_by_test_id("import-history")).to_contain_text("意外中断")
    shoot(page, "history-interrupted")
    page.goto(batch_url)
    expect(page.get_by_test_id("import-interrupted")).to_be_visible()
    expect(page.get_by_test_id("undo-import")).to_be_visible()
    shoot(page, "interrupted")
