from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import func, select

from tracker.extensions import db
from tracker.pathway.models import Pathway

bp = Blueprint("worklist", __name__)


@bp.get("/")
def index():
    counts = dict(
        db.session.execute(select(Pathway.state, func.count()).group_by(Pathway.state)).all()
    )
    pathways = db.session.scalars(select(Pathway).order_by(Pathway.id.desc()).limit(50)).all()
    return render_template("worklist/index.html", pathways=pathways, counts=counts)
