"""@mentions (N4): finding ``@username`` in a note or comment, notifying those
colleagues (a Mention row each), their unread list, and name suggestions.

A colleague is notified only when they may read the note; the others are returned
to the caller so the author can be told. Nothing here commits: the
caller of the note and comment services, and of :func:`mark_mention_read`, does.
"""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select

from extensions import db
from models import CustomerNote, Mention, NoteComment, User, utcnow
from services import policy

# "@li.na", not the "@example.com" of an email address; usernames follow
# services.accounts.USERNAME_RE (the ASCII class keeps "@王芳" out).
MENTION_RE = re.compile(r"(?<![\w@.])@([A-Za-z0-9][A-Za-z0-9._-]{1,31})", re.ASCII)


def mentioned_usernames(*texts: str) -> list[str]:
    """The usernames ``@``-mentioned in ``texts``, lowercased, in order, once each.
    A trailing dot or dash ("@li.na.") is punctuation, not part of the name."""
    names: list[str] = []
    for text in texts:
        for match in MENTION_RE.finditer(text or ""):
            name = match.group(1).rstrip(".-_").lower()
            if len(name) >= 2 and name not in names:
                names.append(name)
    return names


def active_users(usernames: list[str]) -> list[User]:
    if not usernames:
        return []
    return list(db.session.scalars(
        select(User).where(User.username.in_(usernames), User.active.is_(True)).order_by(User.username)
    ))


def colleague_named(name: str) -> User | None:
    """The active colleague with this username (any case) or exactly this display
    name, if there is exactly one."""
    rows = db.session.scalars(
        select(User).where(User.active.is_(True),
                           or_(User.username == name.lower(), User.display_name == name)).limit(3)
    ).all()
    by_username = [user for user in rows if user.username == name.lower()]
    if by_username:
        return by_username[0]
    return rows[0] if len(rows) == 1 else None


def notify_mentioned(
    author: User, note: CustomerNote, texts: list[str], comment: NoteComment | None = None
) -> list[User]:
    """Add a Mention for each active colleague named in ``texts`` who may read
    ``note`` — never for the author, never twice for the same note (or comment).
    Returns the colleagues who were named but may not read the note."""
    unreachable = []
    for user in active_users(mentioned_usernames(*texts)):
        if user.id == author.id:
            continue
        if not policy.may_read_note(user, note):
            unreachable.append(user)
            continue
        exists = select(Mention.id).where(
            Mention.user_id == user.id, Mention.note_id == note.id,
            Mention.comment_id == comment.id if comment is not None else Mention.comment_id.is_(None),
        )
        if db.session.scalar(exists.limit(1)) is None:
            db.session.add(Mention(user_id=user.id, note_id=note.id, author_id=author.id,
                                   comment_id=comment.id if comment is not None else None))
    return unreachable


def unread_mentions(user: User, limit: int = 20) -> list[Mention]:
    """``user``'s unread mentions, newest first, on notes they may still read."""
    rows = db.session.scalars(
        select(Mention).join(CustomerNote, CustomerNote.id == Mention.note_id)
        .where(Mention.user_id == user.id, Mention.read_at.is_(None), CustomerNote.deleted_at.is_(None))
        .order_by(Mention.created_at.desc(), Mention.id.desc()).limit(limit)
    )
    return [mention for mention in rows if policy.may_read_note(user, mention.note)]


def mark_mention_read(user: User, mention_id: int) -> Mention | None:
    """Mark one of ``user``'s mentions read (the caller commits). None when the mention is not
    theirs (or does not exist), so callers answer 404."""
    mention = db.session.get(Mention, mention_id)
    if mention is None or mention.user_id != user.id:
        return None
    if mention.read_at is None:
        mention.read_at = utcnow()
        db.session.flush()
    return mention


def suggest_colleagues(prefix: str, limit: int = 8) -> list[User]:
    """Active colleagues whose username or display name starts with ``prefix``."""
    prefix = prefix.strip()
    if not prefix:
        return []
    prefix = prefix.lower()
    return list(db.session.scalars(
        select(User).where(
            User.active.is_(True),
            # autoescape: a typed % or _ is matched as itself (SQLAlchemy escapes it).
            or_(User.username.startswith(prefix, autoescape=True),
                func.lower(User.display_name).startswith(prefix, autoescape=True)),
        ).order_by(User.username).limit(limit)
    ))


# The "@prefix" being typed at the very end of a text.
_TRAILING_MENTION_RE = re.compile(r"(?:^|(?<=\s))@(\S{0,32})$")


def completions(text: str, limit: int = 8) -> list[tuple[str, User]]:
    """For a text ending in ``@prefix``: the whole text with the prefix completed to
    each matching colleague's username, and that colleague. Used as <datalist>
    options, whose values browsers match against the whole input."""
    text = (text or "")[:600]
    match = _TRAILING_MENTION_RE.search(text)
    if match is None or not match.group(1):
        return []
    head = text[: match.start()]
    return [(f"{head}@{user.username} ", user) for user in suggest_colleagues(match.group(1), limit)]
