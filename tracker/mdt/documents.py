"""Outcome letters as pages: generating one for a case, downloading a generated document
(checked against the reader's teams as every page of a pathway is, and audited as a view
of it), and the administrator's pages editing the letter templates. Thin: the rules are
in ``tracker.mdt.letters``."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField, TextAreaField

from tracker.core.db import utcnow
from tracker.engine.errors import InvalidData
from tracker.engine.models import Pathway
from tracker.extensions import db
from tracker.mdt import letters
from tracker.mdt.models import LETTER_KINDS, GeneratedDocument, MdtCase
from tracker.mdt.routes import bp
from tracker.web.boundary import discard
from tracker.web.forms import put_errors
from tracker.web.helpers import safe_next


@bp.post("/pathways/<int:pathway_id>/cases/<int:case_id>/letters/<kind>")
def generate_letter(pathway_id: int, case_id: int, kind: str):
    pathway = db.get_or_404(Pathway, pathway_id)
    case = db.get_or_404(MdtCase, case_id)
    if case.pathway_id != pathway.id or kind not in LETTER_KINDS:
        abort(404)
    if not FlaskForm().validate():
        abort(400, "The form expired: open the page again and retry.")
    back = safe_next(request.form.get("next"), url_for("pathway.show", pathway_id=pathway.id))
    try:
        document = letters.generate(case, kind, current_user, utcnow())
    except InvalidData as exc:
        discard()
        flash(" ".join(m for ms in exc.errors.values() for m in ms), "danger")
        return redirect(back), 303
    flash(f"{document.kind_label} generated.", "success")
    return redirect(back)


@bp.get("/pathways/<int:pathway_id>/documents/<int:document_id>")
def document(pathway_id: int, document_id: int):
    found = db.get_or_404(GeneratedDocument, document_id)
    if found.pathway_id != pathway_id:
        abort(404)
    return Response(
        found.content,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )


class TemplateForm(FlaskForm):
    subject = StringField("Subject")
    body = TextAreaField("Letter", render_kw={"rows": 22, "spellcheck": "true"})
    submit = SubmitField("Save the template")


@bp.get("/letter-templates")
def letter_templates():
    return render_template(
        "mdt/letter_templates.html",
        templates=[letters.template_for(kind) for kind in LETTER_KINDS],
        kinds=LETTER_KINDS,
    )


@bp.route("/letter-templates/<kind>", methods=["GET", "POST"])
def edit_letter_template(kind: str):
    if kind not in LETTER_KINDS:
        abort(404)
    template = letters.template_for(kind)
    form = TemplateForm()
    context = {"kind": kind, "label": LETTER_KINDS[kind], "variables": letters.VARIABLES}
    if request.method == "GET":
        if request.args.get("default"):
            form.subject.data, form.body.data = letters.DEFAULTS[kind]
            flash("The default is in the form: save it to restore it.", "info")
        else:
            form.subject.data, form.body.data = template.subject, template.body
        return render_template("mdt/letter_template.html", form=form, **context)
    if not form.validate():
        abort(400, "The form expired: open the page again and retry.")
    try:
        changed = letters.save_template(
            kind, form.subject.data or "", form.body.data or "", current_user, utcnow()
        )
    except InvalidData as exc:
        discard()
        problems = put_errors(form, exc.errors)
        return render_template(
            "mdt/letter_template.html", form=form, problems=problems, **context
        ), 422
    flash("Template saved." if changed else "Nothing was changed.", "success")
    return redirect(url_for("mdt.letter_templates"))
