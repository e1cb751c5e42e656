"""Database models. Import from here: ``from models import User``."""

from models.audit import AuditEvent
from models.base import utcnow
from models.customer import (
    Customer,
    CustomerChange,
    CustomerPhone,
    CustomerType,
    Importance,
    PhoneKind,
    Source,
    Stage,
    customer_tags,
)
from models.customer_import import ImportBatch, ImportMapping, ImportRow, ImportStatus
from models.job import JobRun
from models.note import (
    SECTIONS,
    CustomerNote,
    Mention,
    NoteComment,
    NoteKind,
    NoteRevision,
    NoteTemplate,
    note_tags,
)
from models.pool import PoolEvent, PoolEventKind, Setting
from models.search import SearchBacklog
from models.tag import COLOURS, Tag, TagGroup
from models.task import FollowUpTask
from models.user import LoginAddressThrottle, LoginThrottle, Role, User

__all__ = [
    "COLOURS", "SECTIONS", "AuditEvent", "Customer", "CustomerChange", "CustomerNote",
    "CustomerPhone", "CustomerType", "FollowUpTask", "ImportBatch", "ImportMapping", "ImportRow",
    "ImportStatus", "Importance", "JobRun", "LoginAddressThrottle", "LoginThrottle", "Mention",
    "NoteComment", "NoteKind", "NoteRevision", "NoteTemplate", "PhoneKind", "PoolEvent",
    "PoolEventKind", "Role", "SearchBacklog", "Setting", "Source",
    "Stage", "Tag", "TagGroup", "User", "customer_tags", "note_tags", "utcnow",
]
