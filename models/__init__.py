"""Database models. Import from here: ``from models import User``."""

from models.audit import AuditEvent
from models.base import utcnow
from models.user import LoginThrottle, Role, User

__all__ = ["AuditEvent", "LoginThrottle", "Role", "User", "utcnow"]
