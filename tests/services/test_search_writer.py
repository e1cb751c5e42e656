"""The index writer (services.search.whoosh_internals._TermsWriter) writes what
Whoosh's own writer writes.

It replaces Whoosh 3's ``add_postings`` for speed. Here the same documents go
through both writers: with every block compressed as Whoosh compresses it, the
terms and postings files must be the same bytes; with small blocks left
uncompressed (what the app writes), every term must read back with the same
statistics and postings through Whoosh's public reader. The documents cover terms
in one document (phone endings), in many, in more than one block
(POSTINGS_PER_BLOCK), frequencies above one, and a merge (the writer's other
caller, ``add_reader``). A small segment is written as one (compound) file: its
terms and postings are compared inside it. No database, no app.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from whoosh import index
from whoosh.codec.whoosh3 import W3Codec, W3FieldWriter, W3TermInfo
from whoosh.filedb.filestore import FileStorage
from whoosh.reading import SegmentReader

from services.search import documents, store
from services.search import whoosh_internals as internals

SURNAMES = "张王李赵刘陈杨黄周吴"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚"
NOTE_WORDS = ["报价", "合同", "回访", "客户", "电话", "会议", "签约", "送货", "VIP", "preview"]


def _customers(count: int) -> list[dict]:
    made = []
    for i in range(count):
        name = SURNAMES[i % 10] + GIVEN[(i * 7) % 20] + (GIVEN[i % 20] if i % 3 else "")
        row = SimpleNamespace(id=i + 1, name=name, company=f"华{GIVEN[i % 20]}科技有限公司", email=f"u{i}@163.com",
                              address=f"北京市朝阳区{GIVEN[(i * 3) % 20]}路{i % 90}号",
                              owner_id=None if i % 4 else i % 3 + 1, archived_at=None)
        phones = [f"138{i:08d}", f"010{60000000 + i * 13}"] if i % 5 else [f"139{i:08d}"]
        made.append(documents.customer_document(row, phones, [(1, "VIP")] if i % 2 else []))
    return made


def _notes(count: int) -> list[dict]:
    made = []
    for i in range(count):
        body = " ".join(NOTE_WORDS[(i + k) % 10] for k in range(i % 4 + 1)) + " 报价" * (i % 3)
        row = SimpleNamespace(id=i + 1, customer_id=i % 50 + 1, author_id=i % 3 + 1, body=body, sections={},
                              created_at=datetime(2026, 1, 1) + timedelta(minutes=i))
        made.append(documents.note_document(row, [(2, "老客户")] if i % 7 == 0 else [], i % 4 or None, False))
    return made


def _write(folder: Path, schema, batches: list[list[dict]], *, whooshs: bool, merge: bool = False) -> Path:
    folder.mkdir()
    ix = index.create_in(str(folder), schema)
    for batch in batches:
        if whooshs:
            writer = internals._KeepingWriter(ix, codec=W3Codec(blocklimit=internals.POSTINGS_PER_BLOCK),
                                              compound=False)
            assert type(writer.fieldwriter) is W3FieldWriter
        else:
            writer = internals.segment_writer(ix)
            assert type(writer.fieldwriter) is internals._TermsWriter
        for document in batch:
            writer.add_document(**document)
        writer.commit(merge=False)
    if merge:  # every segment copied into one: add_reader's postings go through add_postings too
        writer = internals._KeepingWriter(ix, codec=W3Codec(blocklimit=internals.POSTINGS_PER_BLOCK), compound=False) \
            if whooshs else internals.segment_writer(ix)
        writer.commit(optimize=True)
    return folder


def _read_back(folder: Path) -> list:
    ix = index.open_dir(str(folder))
    read = []
    with ix.reader() as reader:
        for field, text in reader.all_terms():
            info = reader.term_info(field, text)
            postings = reader.postings(field, text)
            items = list(postings.items_as("frequency")) if field != "key" else list(postings.all_ids())
            read.append((field, text, info.weight(), info.doc_frequency(), info.min_length(), info.max_length(),
                         info.max_weight(), info.min_id(), info.max_id(), items))
        stored = [reader.stored_fields(docnum) for docnum in reader.all_doc_ids()]
    return [read, stored]


def _contents(folder: Path, extension: str) -> list[bytes]:
    """The file with ``extension`` of each of the index's segments, in the index's
    order: a file of its own, or a part of the segment's one compound file."""
    ix = index.open_dir(str(folder))
    _schema, segments = internals.read_segments(ix)
    contents = []
    for segment in segments:
        name = f"{internals.segment_id(segment)}{extension}"
        if not segment.is_compound():
            contents.append((folder / name).read_bytes())
            continue
        files = segment.open_compound_file(ix.storage)
        with files.open_file(name) as part:
            contents.append(part.read())
    return contents


CASES = {
    "customers": (store.customer_schema, lambda: [_customers(400)]),
    "customers in segments": (store.customer_schema, lambda: [_customers(200), _customers(400)[200:]]),
    # archived:0, 报价 and other terms in more notes than a block holds
    "notes": (store.note_schema, lambda: [_notes(1100)]),
}


@pytest.mark.parametrize("case", CASES)
def test_files_are_whooshs_byte_for_byte_when_every_block_is_compressed(case, tmp_path, monkeypatch):
    schema, batches = CASES[case]
    monkeypatch.setattr(internals, "UNCOMPRESSED_BELOW", 0)
    made = batches()
    ours = _write(tmp_path / "ours", schema(), made, whooshs=False)
    theirs = _write(tmp_path / "whoosh", schema(), made, whooshs=True)
    for extension in (".trm", ".pst"):
        pairs = list(zip(_contents(ours, extension), _contents(theirs, extension), strict=True))
        assert pairs, extension
        for mine, whooshs in pairs:
            assert mine == whooshs, (case, extension)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("merge", [False, True])
def test_terms_and_postings_read_back_as_whooshs(case, merge, tmp_path):
    schema, batches = CASES[case]
    made = batches()
    ours = _write(tmp_path / "ours", schema(), made, whooshs=False, merge=merge)
    theirs = _write(tmp_path / "whoosh", schema(), made, whooshs=True, merge=merge)
    read = _read_back(ours)
    assert read == _read_back(theirs)
    assert len(read[0]) > 300 and len(read[1]) == sum(map(len, made))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("whooshs_blocks", [False, True])
def test_a_merge_copies_what_whooshs_add_reader_copies(case, whooshs_blocks, tmp_path):
    """copy_live_documents reads postings a block at a time; Whoosh's add_reader,
    posting by posting. From the same segments, some documents deleted (the first,
    the last, runs), both make the same segment, document numbers mapped alike.
    The segments were written by this writer or by Whoosh's: neither keeps a posting
    list in the terms table itself (inlined), which copy_live_documents refuses."""
    schema, batches = CASES[case]
    source = _write(tmp_path / "source", schema(), batches(), whooshs=whooshs_blocks)
    ix = index.open_dir(str(source))
    for segment in internals.read_segments(ix)[1]:
        reader = SegmentReader(ix.storage, ix.schema, segment)
        assert not any(W3TermInfo.from_bytes(info).is_inlined() for info in reader._terms._tindex.values())
        reader.close()
    deleting = ix.writer()
    total = ix.doc_count_all()
    for docnum in [0, total - 1, *range(5, total, 7), *range(100, 160)]:
        deleting.delete_document(docnum)
    deleting.commit(merge=False)
    _schema, segments = internals.read_segments(index.open_dir(str(source)))
    assert len(segments) == len(batches()) and any(segment.deleted_count() for segment in segments)
    copied = {}
    for who in ("ours", "whoosh"):
        folder = tmp_path / who
        folder.mkdir()
        writer = internals.segment_writer(index.create_in(str(folder), schema()))
        maps = []
        for segment in segments:
            if who == "ours":
                maps.append(internals.copy_live_documents(ix.storage, ix.schema, segment, writer))
            else:
                start = writer.doc_count()
                reader = SegmentReader(ix.storage, ix.schema, segment)
                writer.add_reader(reader)
                reader.close()
                live = [d for d in range(segment.doc_count_all()) if not segment.is_deleted(d)]
                maps.append({old: start + new for new, old in enumerate(live)})
        writer.commit(merge=False)
        copied[who] = (_read_back(folder), maps)
    read, maps = copied["ours"]
    assert read == copied["whoosh"][0] and maps == copied["whoosh"][1]
    assert len(read[1]) == total - len({0, total - 1, *range(5, total, 7), *range(100, 160)})


def test_small_blocks_are_left_uncompressed_and_the_files_are_smaller(tmp_path):
    made = [_customers(400)]
    ours = _write(tmp_path / "ours", store.customer_schema(), made, whooshs=False)
    theirs = _write(tmp_path / "whoosh", store.customer_schema(), made, whooshs=True)
    (mine,), (whooshs,) = _contents(ours, ".pst"), _contents(theirs, ".pst")
    assert mine != whooshs
    assert len(mine) < len(whooshs)


# ---- a small segment is one file, written without temporary files --------------------------

def _segment_files(folder: Path) -> dict[str, list[str]]:
    """Per segment of the index's newest TOC, its files' extensions."""
    _schema, segments = internals.read_segments(index.open_dir(str(folder)))
    return {internals.segment_id(segment): sorted(name.split(".", 1)[1] for name in os.listdir(folder)
                                                  if internals.segment_of_file(name) == internals.segment_id(segment))
            for segment in segments}


def test_a_small_segment_is_one_file_made_without_temporary_ones(tmp_path, monkeypatch):
    ix = index.create_in(str(tmp_path), store.note_schema())
    made, folders = [], []
    original_create, original_mkdir = FileStorage.create_file, os.mkdir

    def create_file(self, name, *args, **kwargs):
        made.append(name)
        return original_create(self, name, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        folders.append(path)
        return original_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(FileStorage, "create_file", create_file)
    monkeypatch.setattr(os, "mkdir", mkdir)
    writer = internals.segment_writer(ix)
    for document in _notes(internals.ONE_FILE_DOCS):
        writer.add_document(**document)
    writer.commit(merge=False)
    (segment, extensions), = _segment_files(tmp_path).items()
    assert extensions == ["seg"]
    assert made == [f"{segment}.seg", made[1]] and made[1].startswith("_MAIN_1.toc.")  # the TOC, then renamed
    assert folders == []
    with index.open_dir(str(tmp_path)).searcher() as searcher:
        assert searcher.doc_count() == internals.ONE_FILE_DOCS
        assert searcher.document(key=documents.note_key(7)) is not None


def test_a_larger_segment_and_a_bulk_writers_are_files_of_their_own(tmp_path):
    ix = index.create_in(str(tmp_path), store.note_schema())
    writer = internals.segment_writer(ix)  # a save naming many notes: one customer's, say
    for document in _notes(internals.ONE_FILE_DOCS + 1):
        writer.add_document(**document)
    writer.commit(merge=False)
    writer = internals.segment_writer(ix, limitmb=64)  # a rebuild's or an import's
    writer.add_document(**_notes(1)[0])
    writer.commit(merge=False)
    files = list(_segment_files(tmp_path).values())
    assert len(files) == 2
    for extensions in files:
        assert "seg" not in extensions and {"trm", "pst", "_stored.col"} <= set(extensions)
    with index.open_dir(str(tmp_path)).searcher() as searcher:
        assert searcher.doc_count() == internals.ONE_FILE_DOCS + 2


def test_the_entries_a_save_replaces_are_found_in_one_file_segments(tmp_path):
    """What a save deletes is looked up in the kept terms readers, compound segments
    included (before, a compound segment sent every save the slow way)."""
    ix = index.create_in(str(tmp_path), store.note_schema())
    notes = _notes(30)
    for start in range(0, 30, 10):  # three one-file segments
        writer = internals.segment_writer(ix)
        for document in notes[start : start + 10]:
            writer.add_document(**document)
        writer.commit(merge=False)
    internals.release_held_terms()
    writer = internals.segment_writer(ix)
    try:
        keys = [("key", documents.note_key(number)) for number in (3, 15, 27, 99)]
        assert internals.live_documents_holding(writer, keys) == [2, 14, 26]
    finally:
        writer.cancel()
        internals.release_held_terms()


# ---- finding the newest TOC without listing the folder ---------------------------------------

def _commit_one(ix, number: int) -> None:
    writer = internals.segment_writer(ix)
    writer.add_document(**_customers(number + 1)[number])
    writer.commit(merge=False)


def test_the_newest_toc_is_found_by_name_after_the_first_listing(tmp_path, monkeypatch):
    ix = index.create_in(str(tmp_path), store.customer_schema())
    _commit_one(ix, 0)
    assert ix.latest_generation() == 1  # listed once: remembered
    listings = []
    original = type(ix.storage).list
    monkeypatch.setattr(type(ix.storage), "list",  # the index's folder (the writer's temporary one aside)
                        lambda self: (self.folder == ix.storage.folder and listings.append(1)) or original(self))
    for number in range(1, 4):
        _commit_one(ix, number)  # the writer reads the newest TOC too
    assert ix.latest_generation() == 4 and listings == []
    with index.open_dir(str(tmp_path)).searcher() as searcher:
        assert searcher.doc_count() == 4
    assert listings == []


def test_the_newest_toc_is_listed_again_when_the_one_remembered_is_gone(tmp_path):
    ix = index.create_in(str(tmp_path), store.customer_schema())
    for number in range(3):
        _commit_one(ix, number)
    assert ix.latest_generation() == 3
    store.tidy(ix, unread=True)  # every replaced TOC deleted: only 3 is left
    assert internals.toc_generations(list(ix.storage)) == [3]
    internals._LATEST[(ix.storage.folder, "MAIN")] = 1  # as another process that saw generation 1
    assert ix.latest_generation() == 3


def test_tidy_lists_the_folder_only_once_a_toc_can_have_expired(tmp_path, monkeypatch):
    ix = index.create_in(str(tmp_path), store.customer_schema())
    _commit_one(ix, 0)
    store.tidy(ix)  # the first time: listed
    listings = []
    original = type(ix.storage).list
    monkeypatch.setattr(type(ix.storage), "list",  # the index's folder (the writer's temporary one aside)
                        lambda self: (self.folder == ix.storage.folder and listings.append(1)) or original(self))
    _commit_one(ix, 1)
    store.tidy(ix)  # TOC 1 replaced a moment ago: nothing can have expired
    assert listings == []
    store.tidy(ix, now=time.time() + store.KEEP_REPLACED + 1)  # it has now
    assert listings == [1]
    assert internals.toc_generations(list(ix.storage)) == [2]
