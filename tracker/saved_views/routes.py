"""Pages: save the list one is looking at as a view, open, rename, share, delete.
Thin: the rules are in ``tracker.saved_views.services``."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, user_logged_in
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, StringField, SubmitField

from tracker.engine.errors import InvalidData, RoleNotAllowed
from tracker.saved_views import services
from tracker.saved_views.models import NAME_MAX, PAGES, SavedView
from tracker.web.back import list_url
from tracker.web.boundary import discard
from tracker.web.forms import put_errors

bp = Blueprint("views", __name__, url_prefix="/views")


class SaveForm(FlaskForm):
    name = StringField("Name", description=f"At most {NAME_MAX} characters.")
    shared = BooleanField("Share with everyone (listed in the navigation)")
    page = HiddenField()
    query = HiddenField()
    submit = SubmitField("Save view")


class ChangeForm(FlaskForm):
    name = StringField("Name")
    shared = BooleanField("Shared with everyone")
    submit = SubmitField("Save changes")


# The navigation's menu of views, as (id, name, shared), kept in the user's session: the
# pages that read the views anyway (the worklist, the PTL, the views' page) refresh it, so
# every other page shows the menu without a query (and keeps its query budget). A view a
# colleague shares appears in the menu once the worklist or the PTL is next opened.
_NAV = "nav_views"
_READ_THEM_ANYWAY = ("worklist.index", "returns.ptl", "views.index", "views.save", "views.edit")


@bp.app_template_global()
def saved_views(page: str | None = None) -> list[SavedView]:
    """The views the user sees (all, or one page's): one query a page, which also
    refreshes the navigation's menu."""
    if not current_user.is_authenticated:
        return []
    views = services.visible(current_user)
    menu = [[v.id, v.name, v.shared] for v in views]
    if session.get(_NAV) != menu:
        session[_NAV] = menu
    return [v for v in views if page is None or v.page == page]


@bp.record_once
def _menu_at_login(state) -> None:
    """The menu is read as a user logs in (a password or single sign-on), so the first
    page after it shows the menu without a query of its own."""

    def fill(sender, user, **extra) -> None:
        saved_views()

    user_logged_in.connect(fill, state.app, weak=False)


@bp.app_template_global()
def nav_views() -> list[dict]:
    """The navigation's menu: from the session, read from the database once if missing."""
    if not current_user.is_authenticated:
        return []
    menu = session.get(_NAV)
    if not isinstance(menu, list) or request.endpoint in _READ_THEM_ANYWAY:
        saved_views()
        menu = session.get(_NAV, [])
    return [{"id": m[0], "name": m[1], "shared": m[2]} for m in menu if len(m) == 3]


@bp.app_template_global()
def saved_view_active(view: SavedView, args) -> bool:
    """Whether the page shows exactly the view's filters (the page number aside)."""
    shown = {k: v for k, v in args.items() if k != "page" and v}
    return shown == view.filters


def view_url(view: SavedView) -> str:
    return list_url(view.page, urlencode(view.filters))


def _index_page(form=None, status=200, problems=()):
    views = saved_views()
    own = [v for v in views if v.owner_id == current_user.id]
    others = [v for v in views if v.owner_id != current_user.id]
    return render_template(
        "saved_views/index.html",
        own=own,
        others=others,
        form=form,
        problems=list(problems),
        pages=PAGES,
        describe=services.describe,
        change_form=ChangeForm,
        may_delete=lambda v: services.may_delete(v, current_user),
        view_url=view_url,
    ), status


@bp.get("/")
def index():
    return _index_page()


@bp.post("/")
def save():
    form = SaveForm()
    if not form.validate():
        abort(400, "The form expired: open the page again and save the view once more.")
    values = services.query_values(form.query.data or "")
    try:
        view = services.save(
            current_user, form.name.data or "", form.page.data or "", values, form.shared.data
        )
    except InvalidData as exc:
        discard()
        problems = put_errors(form, {k: v for k, v in exc.errors.items() if k == "name"})
        problems += [m for k, ms in exc.errors.items() if k != "name" for m in ms]
        return _index_page(form, 422, problems)
    flash(
        f"View '{view.name}' saved" + (", shared with everyone." if view.shared else "."),
        "success",
    )
    return redirect(view_url(view))


def _own_or_404(view_id: int) -> SavedView:
    view = services.find(view_id, current_user)
    if view is None:
        abort(404)
    return view


@bp.get("/<int:view_id>")
def open_view(view_id: int):
    return redirect(view_url(_own_or_404(view_id)))


@bp.post("/<int:view_id>/edit")
def edit(view_id: int):
    view = _own_or_404(view_id)
    form = ChangeForm()
    if not form.validate():
        abort(400, "The form expired: open the page again and retry.")
    try:
        changed = services.change(view, current_user, form.name.data or "", form.shared.data)
    except RoleNotAllowed as exc:
        discard()
        abort(403, exc.message)
    except InvalidData as exc:
        discard()
        problems = [m for ms in exc.errors.values() for m in ms]
        return _index_page(None, 422, [f"'{view.name}' was not changed: {p}" for p in problems])
    flash(f"View '{view.name}' changed." if changed else "Nothing was changed.", "success")
    return redirect(url_for("views.index"))


@bp.post("/<int:view_id>/delete")
def delete(view_id: int):
    view = _own_or_404(view_id)
    if not FlaskForm().validate():
        abort(400, "The form expired: open the page again and retry.")
    name = view.name
    try:
        services.delete(view, current_user)
    except RoleNotAllowed as exc:
        discard()
        abort(403, exc.message)
    flash(f"View '{name}' deleted.", "success")
    return redirect(url_for("views.index"))
