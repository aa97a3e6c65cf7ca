"""Pages of a listing, counted and sliced by the database (never loaded whole)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from app.extensions import db


@dataclass
class Page:
    """One page of a listing."""

    items: list[Any]
    total: int
    page: int
    per_page: int

    @classmethod
    def whole(cls, items: list[Any]) -> Page:
        """A listing that fits on one page (for templates that take a Page)."""
        return cls(items=items, total=len(items), page=1, per_page=max(1, len(items)))

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paginate(query: Select, page: int, per_page: int, *order_by) -> Page:
    """Run `query` for one 1-based page of `per_page` rows, in `order_by` order, with the total."""
    page, per_page = max(1, page), max(1, per_page)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = list(db.session.scalars(
        query.order_by(*order_by).limit(per_page).offset((page - 1) * per_page)
    ))
    return Page(items=items, total=total or 0, page=page, per_page=per_page)
