"""A pathway as a FHIR R4 Bundle (collection), mapped as PATHWAY.md says.

Patient; EpisodeOfCare with statusHistory; Condition; ImagingStudy and
DiagnosticReport; Procedure for biopsies and operations; Observation for each
score, with components; Encounter and CarePlan for MDT decisions; Provenance for
every event. Each bundle is validated with fhir.resources (R4B) before it is
served; statuses and codes are checked against VALUE_SETS, which the package
does not do.
"""

from __future__ import annotations

import uuid

from tracker.api.serialize import iso
from tracker.engine import steps as d
from tracker.engine import tags
from tracker.engine.dictionary import describe
from tracker.engine.fields import expand_levels, lesion_key
from tracker.engine.history import History
from tracker.engine.scores import SCORES
from tracker.engine.steps import all_fields_for

CS = "urn:tracker:codesystem:"  # the project's own code systems
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
LOINC = "http://loinc.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SNOMED = "http://snomed.info/sct"
NAMESPACE = uuid.UUID("4f1d6b0e-4a53-4d6f-9d0f-2d3c8e1a7b21")

# FHIR R4 required value sets for the codes this export emits.
VALUE_SETS = {
    "Bundle.type": {
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    },
    "Patient.gender": {"male", "female", "other", "unknown"},
    "EpisodeOfCare.status": {
        "planned",
        "waitlist",
        "active",
        "onhold",
        "finished",
        "cancelled",
        "entered-in-error",
    },
    "Condition.clinicalStatus": {
        "active",
        "recurrence",
        "relapse",
        "inactive",
        "remission",
        "resolved",
    },
    "Condition.verificationStatus": {
        "unconfirmed",
        "provisional",
        "differential",
        "confirmed",
        "refuted",
        "entered-in-error",
    },
    "ImagingStudy.status": {"registered", "available", "cancelled", "entered-in-error", "unknown"},
    "DiagnosticReport.status": {
        "registered",
        "partial",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "appended",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    "Procedure.status": {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    },
    "Observation.status": {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    "Encounter.status": {
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    "CarePlan.status": {
        "draft",
        "active",
        "on-hold",
        "revoked",
        "completed",
        "entered-in-error",
        "unknown",
    },
    "CarePlan.intent": {"proposal", "plan", "order", "option"},
    f"{ACT_CODE}": {
        "AMB",
        "EMER",
        "FLD",
        "HH",
        "IMP",
        "ACUTE",
        "NONAC",
        "OBSENC",
        "PRENC",
        "SS",
        "VR",
    },
    f"{DATA_OPERATION}": {"CREATE", "UPDATE", "DELETE", "APPEND", "NULLIFY", "EXECUTE"},
    f"{OBS_CATEGORY}": {
        "social-history",
        "vital-signs",
        "imaging",
        "laboratory",
        "procedure",
        "survey",
        "exam",
        "therapy",
        "activity",
    },
    f"{DCM}": {"MR", "CT", "DX", "NM", "PT", "US", "XA"},
}
# SNOMED CT where a code exists (bone structures as DICOM's anatomic value sets name them);
# the project's own code system otherwise (a vertebral level, the pelvis, the skull).
SECONDARY_OF_BONE = ("94222008", "Secondary malignant neoplasm of bone")
BONE_SNOMED = {
    "humerus": ("85050009", "Humerus"),
    "radius": ("62413002", "Radius"),
    "ulna": ("23416004", "Ulna"),
    "femur": ("71341001", "Femur"),
    "tibia": ("12611008", "Tibia"),
    "fibula": ("87342007", "Fibula"),
    "scapula": ("79601000", "Scapula"),
    "rib": ("113197003", "Rib"),
    "sternum": ("56873002", "Sternum"),
}
LESION_STATUS = {"resolved": "resolved", "responding": "active"}  # finding -> clinicalStatus
MODALITY_DCM = {"mri": "MR", "ct": "CT", "xray": "DX", "bone_scan": "NM", "pet_ct": "PT"}
LOINC_SCORES = {
    "ecog": ("89247-1", "ECOG Performance Status score"),
    "karnofsky": ("89243-0", "Karnofsky Performance Status score"),
}
OTHER_SCORES = {
    "asia_grade": "ASIA impairment scale grade",
    "bilsky_grade": "Bilsky ESCC grade",
    "pain_nrs": "Pain numeric rating scale (0-10)",
    "enneking_stage": "Enneking stage",
}


def _id(*parts) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(map(str, parts))))


def _ref(key: str) -> dict:
    return {"reference": f"urn:uuid:{key}"}


def _coding(system: str, code: str, display: str | None = None) -> dict:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def episode_status(state: str) -> str:
    if state in d.FINAL_STATES:
        return "finished"
    return "waitlist" if state == d.INITIAL_STATE else "active"


def bundle(pathway, events) -> dict:
    """The pathway's Bundle as JSON, validated with fhir.resources R4B."""
    from fhir.resources.R4B.bundle import Bundle

    data = build(pathway, events)
    Bundle.model_validate(data)
    return data


def patient_resource(patient, pid: str) -> dict:
    """The Patient: the NHS number first (UK Core's identifier), then the MRN; the GP
    practice, known by name only, as a reference to an Organization with its display."""
    identifiers = [{"system": f"{CS}mrn", "value": patient.mrn}]
    if patient.nhs_number:
        identifiers.insert(0, {"system": NHS_NUMBER, "value": patient.nhs_number})
    resource = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": identifiers,
        "name": [{"family": patient.family_name, "given": [patient.given_name]}],
        "gender": patient.sex,
        "birthDate": iso(patient.birth_date),
    }
    if patient.gp_practice:
        resource["generalPractitioner"] = [{"type": "Organization", "display": patient.gp_practice}]
    return resource


def build(pathway, events) -> dict:
    history = History.from_events(events)
    patient = pathway.patient
    pid, eid, cid = (
        _id("patient", patient.id),
        _id("pathway", pathway.id),
        _id("condition", pathway.id),
    )
    subject = _ref(pid)
    entries: list[tuple[str, dict]] = []
    produced: dict[int, str] = {}  # event seq -> the resource it produced

    entries.append((pid, patient_resource(patient, pid)))
    changes = [s for s in history.counting() if s.changes_state or s.trigger == d.OPEN_TRIGGER]
    status_history = []
    for i, step in enumerate(changes):
        period = {"start": iso(step.occurred_at)}
        if i + 1 < len(changes):
            period["end"] = iso(changes[i + 1].occurred_at)
        status_history.append({"status": episode_status(step.to_state), "period": period})
    entries.append(
        (
            eid,
            {
                "resourceType": "EpisodeOfCare",
                "id": eid,
                "status": episode_status(pathway.state),
                "statusHistory": status_history,
                "type": [
                    {
                        "coding": [
                            _coding(
                                f"{CS}pathway", "spine-bone-tumour", "Spine and bone tumour pathway"
                            )
                        ],
                        "text": f"Current state: {d.STATE_LABELS[pathway.state]}",
                    }
                ],
                "diagnosis": [{"condition": _ref(cid)}],
                "patient": subject,
                "period": {
                    "start": iso(pathway.referral_received_at),
                    **({"end": iso(pathway.closed_at)} if pathway.closed_at else {}),
                },
            },
        )
    )
    biopsy = history.latest_tagged(tags.BIOPSY_RESULT)
    confirmed = biopsy is not None and biopsy.data.get("result") == "malignant"
    entries.append(
        (
            cid,
            {
                "resourceType": "Condition",
                "id": cid,
                "clinicalStatus": {
                    "coding": [
                        _coding(CLINICAL, "recurrence" if pathway.recurrence_count else "active")
                    ]
                },
                "verificationStatus": {
                    "coding": [
                        _coding(
                            VERIFICATION,
                            "confirmed" if confirmed or history.mdt_outcomes() else "provisional",
                        )
                    ]
                },
                "code": {
                    "coding": [_coding(f"{CS}diagnosis-category", pathway.diagnosis_category)],
                    "text": pathway.diagnosis_category.replace("_", " "),
                },
                "bodySite": [{"text": pathway.tumour_site}],
                "subject": subject,
                "recordedDate": iso(pathway.referral_received_at),
            },
        )
    )
    lesion_ids, focus = _lesions(pathway, history, subject, entries)
    for step in history.counting():
        data, when, seq = step.data, iso(step.occurred_at), step.seq
        amended = bool(step.amended_by)
        exported_as = d.entry(step.trigger).fhir
        if exported_as == "imaging":
            study, report = _id("imaging", pathway.id, seq), _id("imaging-report", pathway.id, seq)
            entries.append(
                (
                    study,
                    {
                        "resourceType": "ImagingStudy",
                        "id": study,
                        "status": "available",
                        "subject": subject,
                        "started": when,
                        "modality": [_coding(DCM, MODALITY_DCM[data["modality"]])],
                        "description": f"{data['region']} {data.get('levels', '')}".strip(),
                    },
                )
            )
            entries.append(
                (
                    report,
                    {
                        "resourceType": "DiagnosticReport",
                        "id": report,
                        "status": "amended" if amended else "final",
                        "code": {"text": "Imaging report"},
                        "subject": subject,
                        "effectiveDateTime": when,
                        "imagingStudy": [_ref(study)],
                        "conclusion": data["findings"],
                    },
                )
            )
            produced[seq] = report
        elif exported_as == "biopsy":
            proc, report = _id("biopsy", pathway.id, seq), _id("histology", pathway.id, seq)
            entries.append(
                (
                    proc,
                    {
                        "resourceType": "Procedure",
                        "id": proc,
                        "status": "completed",
                        "code": {
                            "coding": [_coding(f"{CS}biopsy-method", data["method"])],
                            "text": "Biopsy",
                        },
                        "subject": subject,
                        "performedDateTime": when,
                    },
                )
            )
            entries.append(
                (
                    report,
                    {
                        "resourceType": "DiagnosticReport",
                        "id": report,
                        "status": "amended" if amended else "final",
                        "code": {"text": "Histology"},
                        "subject": subject,
                        "effectiveDateTime": when,
                        "conclusion": f"{data['result']}: {data['histology']}",
                    },
                )
            )
            produced[seq] = report
        elif exported_as == "surgery":
            proc = _id("surgery", pathway.id, seq)
            fields = {f.name: f for f in all_fields_for(step.trigger, step.from_state)}
            entries.append(
                (
                    proc,
                    {
                        "resourceType": "Procedure",
                        "id": proc,
                        "status": "completed",
                        "category": {"text": "Cancer-related surgical procedure"},
                        "code": {
                            "coding": [_coding(f"{CS}procedure", p) for p in data["procedures"]],
                            "text": describe(fields["procedures"], data["procedures"]),
                        },
                        "subject": subject,
                        "performedDateTime": when,
                        "performer": [{"actor": {"display": data["lead_surgeon"]}}],
                        "bodySite": [{"text": data["levels"]}],
                        **(
                            {"reasonReference": [_ref(lesion_ids[k]) for k in named]}
                            if (named := _named(data, lesion_ids))
                            else {}
                        ),
                        "note": [
                            {"text": f"Approach: {describe(fields['approach'], data['approach'])}"}
                        ],
                    },
                )
            )
            produced[seq] = proc
        elif step.from_state and d.is_mdt_outcome(step.trigger, step.from_state):
            encounter, plan = _id("mdt", pathway.id, seq), _id("careplan", pathway.id, seq)
            entries.append(
                (
                    encounter,
                    {
                        "resourceType": "Encounter",
                        "id": encounter,
                        "status": "finished",
                        "class": _coding(ACT_CODE, "AMB", "ambulatory"),
                        "type": [{"text": "Multidisciplinary team meeting"}],
                        "subject": subject,
                        "episodeOfCare": [_ref(eid)],
                        "period": {"start": data["meeting_date"]},
                    },
                )
            )
            entries.append(
                (
                    plan,
                    {
                        "resourceType": "CarePlan",
                        "id": plan,
                        "status": "completed" if pathway.closed_at else "active",
                        "intent": "plan",
                        "title": d.label(step.trigger),
                        "description": data["rationale"],
                        "subject": subject,
                        "encounter": _ref(encounter),
                        "created": when,
                        "addresses": [_ref(cid)],
                    },
                )
            )
            produced[seq] = plan
        for key, value in data.items():
            observation = _observation(pathway.id, seq, key, value, data, subject, when, amended)
            if observation and (seq, key) in focus:
                observation["focus"] = [_ref(focus[(seq, key)])]
            if observation:
                entries.append((observation["id"], observation))
                produced.setdefault(seq, observation["id"])
    for step in history.steps:
        target = produced.get(step.amends_seq or step.voids_seq or step.seq, eid)
        activity = {d.AMEND_TRIGGER: "UPDATE", d.VOID_TRIGGER: "NULLIFY"}.get(
            step.trigger, "CREATE"
        )
        user = step.event.recorded_by if step.event is not None else None
        prov = _id("provenance", pathway.id, step.seq)
        entries.append(
            (
                prov,
                {
                    "resourceType": "Provenance",
                    "id": prov,
                    "target": [_ref(target)],
                    "occurredDateTime": iso(step.occurred_at),
                    "recorded": iso(step.recorded_at),
                    "activity": {
                        "coding": [_coding(DATA_OPERATION, activity)],
                        "text": d.label(step.trigger),
                    },
                    "agent": [{"who": {"display": user.username if user else "unknown"}}],
                },
            )
        )
    return {
        "resourceType": "Bundle",
        "id": _id("bundle", pathway.id, pathway.version),
        "type": "collection",
        "entry": [
            {"fullUrl": f"urn:uuid:{key}", "resource": resource} for key, resource in entries
        ],
    }


def _named(data: dict, lesion_ids: dict[str, str]) -> list[str]:
    """The keys of the lesions a step names, as the bundle knows them."""
    return [k for label in data.get("lesions") or [] if (k := lesion_key(label)) in lesion_ids]


def _lesions(pathway, history: History, subject: dict, entries: list) -> tuple[dict, dict]:
    """Each lesion as a Condition, its body site the vertebral levels (one entry a level,
    the project's codes) or the bone (SNOMED CT where it has a code); returns the lesions'
    resource ids by key, and the lesion each score's Observation is about, by (seq, field)."""
    metastatic = pathway.diagnosis_category == "metastatic_spinal"
    ids: dict[str, str] = {}
    focus: dict[tuple[int, str], str] = {}
    for lesion in history.lesions():
        key = lesion_key(lesion.ref)
        rid = ids[key] = _id("lesion", pathway.id, key)
        if lesion.levels:
            sites = [
                {
                    "coding": [_coding(f"{CS}spinal-level", level, f"{level} vertebra")],
                    "text": f"{level} vertebra",
                }
                for level in expand_levels(lesion.levels)
            ]
        elif lesion.bone:
            coding = (
                _coding(SNOMED, *BONE_SNOMED[lesion.bone])
                if lesion.bone in BONE_SNOMED
                else _coding(f"{CS}bone", lesion.bone, lesion.bone.capitalize())
            )
            sites = [{"coding": [coding], "text": lesion.site.capitalize()}]
        else:
            sites = [{"text": lesion.site}]
        kind = "spinal-lesion" if lesion.spinal else "bone-lesion"
        code = {
            "coding": [_coding(f"{CS}lesion", kind, kind.replace("-", " ").capitalize())],
            "text": f"Lesion {lesion.ref}",
        }
        if metastatic:
            code["coding"].insert(0, _coding(SNOMED, *SECONDARY_OF_BONE))
        first = min((r.at for r in lesion.readings), default=None)
        entries.append(
            (
                rid,
                {
                    "resourceType": "Condition",
                    "id": rid,
                    "identifier": [{"system": f"{CS}lesion-ref", "value": lesion.ref}],
                    "clinicalStatus": {
                        "coding": [_coding(CLINICAL, LESION_STATUS.get(lesion.finding, "active"))]
                    },
                    "verificationStatus": {
                        "coding": [
                            _coding(
                                VERIFICATION, "provisional" if lesion.from_referral else "confirmed"
                            )
                        ]
                    },
                    "code": code,
                    "bodySite": sites,
                    "subject": subject,
                    **({"recordedDate": iso(first)} if first else {}),
                    **(
                        {"note": [{"text": f"Latest finding: {lesion.finding}"}]}
                        if lesion.finding
                        else {}
                    ),
                },
            )
        )
        for reading in lesion.readings:
            for value_key, field_name in (
                ("sins_total", "sins"),
                ("bilsky_grade", "bilsky_grade"),
                ("mirels_total", "mirels"),
            ):
                if reading.get(value_key) is not None:
                    focus[(reading.seq, field_name)] = rid
    return ids, focus


def _observation(pathway_id, seq, key, value, data, subject, when, amended) -> dict | None:
    base = {
        "resourceType": "Observation",
        "id": _id("observation", pathway_id, seq, key),
        "status": "amended" if amended else "final",
        "subject": subject,
        "effectiveDateTime": when,
        "category": [{"coding": [_coding(OBS_CATEGORY, "survey")]}],
    }
    if key in LOINC_SCORES:
        code, display = LOINC_SCORES[key]
        return {
            **base,
            "code": {"coding": [_coding(LOINC, code, display)]},
            "valueInteger": int(value),
        }
    if key in OTHER_SCORES:
        coding = _coding(f"{CS}score", key, OTHER_SCORES[key])
        if key == "pain_nrs":
            return {**base, "code": {"coding": [coding]}, "valueInteger": int(value)}
        return {**base, "code": {"coding": [coding]}, "valueString": str(value)}
    if key in SCORES:
        score = SCORES[key]
        return {
            **base,
            "code": {"coding": [_coding(f"{CS}score", key, score.label)]},
            "valueInteger": data[f"{key}_total"],
            "interpretation": [{"text": score.band(data[f"{key}_total"])[1]}],
            "component": [
                {
                    "code": {"coding": [_coding(f"{CS}{key}-component", component)]},
                    "valueInteger": value[component],
                }
                # In the score's own order: PostgreSQL's jsonb keeps keys in its own order.
                for component in score.components
                if component in value
            ],
        }
    return None
