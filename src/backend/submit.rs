//! `POST /api/v1/messages`: multipart/form-data streamed to the spool, then handed to the MSH.
//!
//! The order of work is chosen so that a refusal costs as little as possible and leaves
//! nothing behind: the metadata part comes first and is checked (syntax, limits, the caller's
//! P-Mode and party permissions) before any payload byte is read; payload parts are streamed
//! straight into spool files (size-capped, SHA-256 computed on the way); the submitter decides;
//! and every spooled file of a refused (or idempotently repeated) submission is deleted again.

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use futures_util::TryStreamExt;
use multer::{Constraints, Multipart, SizeLimit};
use tokio_util::io::StreamReader;

use super::auth::{log_forbidden, BackendAccess};
use super::model::{Accepted, SubmitMetadata};
use super::problem::{Problem, ProblemType};
use super::AppState;
use crate::msh::api::{PayloadIn, SubmitError, SubmitRequest};
use crate::store::{FileRef, Spool, StoreError};

/// Name of the metadata part.
pub const METADATA_PART: &str = "metadata";
/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

fn bad(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::InvalidRequest, detail)
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::InvalidField, detail).field(field)
}

/// Maps a multipart reading error (seen directly or through the spool's reader).
fn multipart_problem(e: &multer::Error, field: &str) -> Problem {
    match e {
        multer::Error::StreamSizeExceeded { limit } => Problem::new(
            ProblemType::PayloadTooLarge,
            format!("request body exceeds {limit} bytes"),
        )
        .field(field),
        multer::Error::FieldSizeExceeded { limit, field_name } => Problem::new(
            ProblemType::PayloadTooLarge,
            format!(
                "part {} exceeds {limit} bytes",
                field_name.as_deref().unwrap_or("?")
            ),
        )
        .field(field),
        other => bad(format!("malformed multipart body: {other}")).field(field),
    }
}

/// Deletes spooled files that no committed row references.
async fn discard(spool: &Spool, files: impl IntoIterator<Item = FileRef>) {
    for f in files {
        if let Err(e) = spool.discard(&f).await {
            tracing::warn!(file = %f.name(), error = %e, "could not delete spooled file of a refused submission");
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .ok()
        .filter(|s| {
            !s.is_empty()
                && s.len() <= MAX_IDEMPOTENCY_KEY
                && s.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            bad(format!(
                "Idempotency-Key must be 1..={MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
            .field("Idempotency-Key")
        })?;
    Ok(Some(s.to_string()))
}

/// Checks the metadata before any payload is read.
fn check_metadata(meta: &SubmitMetadata, state: &AppState) -> Result<(), Problem> {
    if meta.payloads.len() > state.limits.max_payloads {
        return Err(Problem::new(
            ProblemType::PayloadTooLarge,
            format!(
                "{} payloads declared; at most {} per submission",
                meta.payloads.len(),
                state.limits.max_payloads
            ),
        )
        .field("payloads"));
    }
    let mut names = HashSet::new();
    for (i, p) in meta.payloads.iter().enumerate() {
        if p.part.is_empty() || p.part == METADATA_PART {
            return Err(invalid(
                format!("payloads/{i}/part"),
                format!("part name {:?} is not usable", p.part),
            ));
        }
        if !names.insert(p.part.as_str()) {
            return Err(invalid(
                format!("payloads/{i}/part"),
                format!("part {:?} declared twice", p.part),
            ));
        }
        if let Some(m) = &p.mime_type {
            if m.parse::<mime::Mime>().is_err() {
                return Err(invalid(
                    format!("payloads/{i}/mimeType"),
                    format!("{m:?} is not a MIME type"),
                ));
            }
        }
    }
    for (i, p) in meta.properties.iter().enumerate() {
        if p.name.trim().is_empty() {
            return Err(invalid(
                format!("properties/{i}/name"),
                "property name must not be empty",
            ));
        }
    }
    Ok(())
}

/// Runs one submission; see the module documentation for the order of work.
pub(crate) async fn handle(
    state: &AppState,
    caller: &BackendAccess,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, Problem> {
    let idempotency_key = idempotency_key(headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_form = content_type
        .parse::<mime::Mime>()
        .map(|m| m.type_() == mime::MULTIPART && m.subtype() == mime::FORM_DATA)
        .unwrap_or(false);
    if !is_form {
        return Err(Problem::new(
            ProblemType::UnsupportedMediaType,
            format!("expected multipart/form-data, got {content_type:?}"),
        )
        .field("Content-Type"));
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| bad(format!("no multipart boundary: {e}")).field("Content-Type"))?;

    let limits = state.limits;
    let whole = limits
        .max_payload_size
        .saturating_add(64 * 1024)
        .saturating_mul(limits.max_payloads as u64)
        .saturating_add(limits.max_metadata_size)
        .saturating_add(64 * 1024);
    let constraints = Constraints::new().size_limit(
        SizeLimit::new()
            .whole_stream(whole)
            .for_field(METADATA_PART, limits.max_metadata_size),
    );
    let mut mp = Multipart::with_constraints(body.into_data_stream(), boundary, constraints);

    // 1. metadata, first.
    let first = mp
        .next_field()
        .await
        .map_err(|e| multipart_problem(&e, METADATA_PART))?
        .ok_or_else(|| {
            bad("empty multipart body: the metadata part is missing").field(METADATA_PART)
        })?;
    if first.name() != Some(METADATA_PART) {
        return Err(bad(format!(
            "the first part must be \"{METADATA_PART}\", not {:?}",
            first.name().unwrap_or("")
        ))
        .field(METADATA_PART));
    }
    let raw = first
        .bytes()
        .await
        .map_err(|e| multipart_problem(&e, METADATA_PART))?;
    let meta: SubmitMetadata = serde_json::from_slice(&raw).map_err(|e| {
        bad(format!("metadata is not valid JSON for this API: {e}")).field(METADATA_PART)
    })?;
    check_metadata(&meta, state)?;
    let props: Vec<(String, String)> = meta
        .properties
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    if let Err(p) = caller.check_submit(meta.pmode.as_deref(), &props) {
        log_forbidden(caller, "submit", &p);
        return Err(p);
    }

    // 2. payloads, streamed to the spool.
    let spool = state.store.spool();
    let mut spooled: Vec<Option<(FileRef, Option<String>)>> = vec![None; meta.payloads.len()];
    let streamed: Result<(), Problem> = async {
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| multipart_problem(&e, "payloads"))?
        {
            let name = field.name().unwrap_or("").to_string();
            let i = meta
                .payloads
                .iter()
                .position(|p| p.part == name)
                .ok_or_else(|| {
                    invalid(
                        "payloads",
                        format!("part {name:?} is not declared in metadata.payloads"),
                    )
                })?;
            if spooled[i].is_some() {
                return Err(invalid(
                    format!("payloads/{i}/part"),
                    format!("part {name:?} sent twice"),
                ));
            }
            let part_type = field.content_type().map(|m| m.essence_str().to_string());
            let reader = StreamReader::new(field.map_err(std::io::Error::other));
            let file = spool
                .put_stream(reader, limits.max_payload_size)
                .await
                .map_err(|e| match e {
                    StoreError::TooLarge(n) => Problem::new(
                        ProblemType::PayloadTooLarge,
                        format!("payload {name:?} exceeds {n} bytes"),
                    )
                    .field(format!("payloads/{i}")),
                    StoreError::Io(io) => {
                        match io.get_ref().and_then(|r| r.downcast_ref::<multer::Error>()) {
                            Some(me) => multipart_problem(me, &format!("payloads/{i}")),
                            None => {
                                let text = io.to_string();
                                match StoreError::Io(io).unavailable() {
                                    Some(u) => Problem::unavailable(format!(
                                        "{u}: payload {name:?} could not be spooled ({text}); the submission was not stored, repeat it later"
                                    )),
                                    None => Problem::internal(format!("spooling {name:?}: {text}")),
                                }
                            }
                        }
                    }
                    other => Problem::from(other),
                })?;
            spooled[i] = Some((file, part_type));
        }
        Ok(())
    }
    .await;
    let take_files = |spooled: &mut Vec<Option<(FileRef, Option<String>)>>| -> Vec<FileRef> {
        spooled
            .iter_mut()
            .filter_map(|s| s.take().map(|(f, _)| f))
            .collect()
    };
    if let Err(p) = streamed {
        discard(spool, take_files(&mut spooled)).await;
        return Err(p);
    }
    if let Some(i) = spooled.iter().position(Option::is_none) {
        let p = invalid(
            format!("payloads/{i}/part"),
            format!(
                "payload {:?} is declared but its part was not sent",
                meta.payloads[i].part
            ),
        );
        discard(spool, take_files(&mut spooled)).await;
        return Err(p);
    }

    // 3. hand over to the MSH.
    let mut payloads = Vec::with_capacity(meta.payloads.len());
    for (i, (pm, s)) in meta.payloads.iter().zip(spooled.iter()).enumerate() {
        let Some((file, part_type)) = s else { continue };
        let mime_type = match pm.mime_type.clone().or_else(|| part_type.clone()) {
            Some(m) => m,
            None => {
                let p = invalid(
                    format!("payloads/{i}/mimeType"),
                    "no mimeType in metadata and no Content-Type on the part",
                );
                discard(spool, take_files(&mut spooled)).await;
                return Err(p);
            }
        };
        payloads.push(PayloadIn {
            part_name: pm.part.clone(),
            mime_type,
            properties: pm
                .properties
                .iter()
                .map(|p| (p.name.clone(), p.value.clone()))
                .collect(),
            file: file.clone(),
        });
    }
    let files: Vec<FileRef> = payloads.iter().map(|p| p.file.clone()).collect();
    let req = SubmitRequest {
        pmode_id: meta.pmode,
        service: meta.service,
        service_type: meta.service_type,
        action: meta.action,
        from: meta.from.map(Into::into),
        to: meta.to.map(Into::into),
        conversation_id: meta.conversation_id,
        ref_to_message_id: meta.ref_to_message_id,
        message_id: meta.message_id,
        idempotency_key,
        properties: meta.properties.into_iter().map(Into::into).collect(),
        payloads,
        backend: Some(caller.name.clone()),
    };
    match state.submitter.submit(req).await {
        Ok(r) => {
            if !r.created {
                // The earlier submission's files are the referenced ones.
                discard(spool, files).await;
            }
            crate::telemetry::message_span(
                crate::telemetry::Stage::Submit,
                &r.message_id,
                &r.conversation_id,
                &r.pmode_id,
            )
            .in_scope(|| tracing::info!(backend = %caller.name, created = r.created, "submission accepted"));
            Ok(r.into())
        }
        Err(e) => {
            // After an internal failure the outcome of the commit is unknown (an fsync error
            // may hide a commit that survives): keep the files (an unreferenced file is
            // harmless, a row without its file is not).
            if !matches!(e, SubmitError::Internal(_) | SubmitError::Unavailable(_)) {
                discard(spool, files).await;
            }
            let p = Problem::from(e);
            if p.status == 403 {
                log_forbidden(caller, "submit", &p);
            } else {
                tracing::info!(backend = %caller.name, problem = %p.type_, detail = %p.detail, "submission refused");
            }
            Err(p)
        }
    }
}
