//! The OTLP `ExportTraceServiceRequest` of a batch, encoded in protobuf straight from dspex's
//! span records: each field written where the record holds it (prost's varint and key
//! helpers), with no OpenTelemetry `SpanData`, no message structs and no allocation per span.
//! The resource and the instrumentation scope are encoded once; the buffers are kept from one
//! batch to the next.

use opentelemetry_sdk::Resource;
use prost::bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use crate::data::spans::{AttributeSink, AttributeValue, SpanRecord};

/// `Span.kind`: internal, and client (an LM call).
const KIND_INTERNAL: u64 = 1;
const KIND_CLIENT: u64 = 3;
/// `Status.code` of a failed span.
const STATUS_ERROR: u64 = 2;
/// `Span.flags`: sampled, and whether the parent is remote is known (and whether it is).
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;
/// The field numbers of `Resource.attributes` and `Span.attributes`.
const RESOURCE_ATTRIBUTES: u32 = 1;
const SPAN_ATTRIBUTES: u32 = 9;

/// Encodes batches of span records as one `ExportTraceServiceRequest` each.
#[derive(Debug)]
pub(crate) struct OtlpEncoder {
    /// `ResourceSpans.resource`, key included.
    resource: Vec<u8>,
    /// `ScopeSpans.scope`, key included.
    scope: Vec<u8>,
    /// The batch's `ScopeSpans.spans`, keys included.
    spans: Vec<u8>,
    /// One span's fields.
    span: Vec<u8>,
}

impl OtlpEncoder {
    /// An encoder for spans of `resource`, recorded by the instrumentation scope `scope_name`
    /// at `scope_version`.
    pub(crate) fn new(resource: &Resource, scope_name: &str, scope_version: &str) -> Self {
        let mut attributes = Vec::new();
        for (key, value) in resource.iter() {
            let text;
            let value = match value {
                opentelemetry::Value::Bool(v) => AttributeValue::Bool(*v),
                opentelemetry::Value::I64(v) => AttributeValue::Int(*v),
                opentelemetry::Value::F64(v) => AttributeValue::Double(*v),
                opentelemetry::Value::String(v) => AttributeValue::Str(v.as_str()),
                other => {
                    text = other.to_string();
                    AttributeValue::Str(&text)
                }
            };
            Fields {
                tag: RESOURCE_ATTRIBUTES,
                out: &mut attributes,
            }
            .attribute("", key.as_str(), value);
        }
        let mut resource = Vec::new();
        bytes_field(1, &attributes, &mut resource);
        let mut fields = Vec::new();
        string_field(1, "", scope_name, &mut fields);
        string_field(2, "", scope_version, &mut fields);
        let mut scope = Vec::new();
        bytes_field(1, &fields, &mut scope);
        Self {
            resource,
            scope,
            spans: Vec::new(),
            span: Vec::new(),
        }
    }

    /// Writes into `out` (cleared first) the request exporting `records`.
    pub(crate) fn encode(&mut self, records: &[SpanRecord], out: &mut Vec<u8>) {
        self.spans.clear();
        for record in records {
            self.span.clear();
            encode_span(record, &mut self.span);
            bytes_field(2, &self.span, &mut self.spans);
        }
        let scope_spans = self.scope.len() + self.spans.len();
        let resource_spans =
            self.resource.len() + key_len(2) + encoded_len_varint(scope_spans as u64) + scope_spans;
        out.clear();
        out.reserve(key_len(1) + encoded_len_varint(resource_spans as u64) + resource_spans);
        encode_key(1, WireType::LengthDelimited, out);
        encode_varint(resource_spans as u64, out);
        out.extend_from_slice(&self.resource);
        encode_key(2, WireType::LengthDelimited, out);
        encode_varint(scope_spans as u64, out);
        out.extend_from_slice(&self.scope);
        out.extend_from_slice(&self.spans);
    }
}

/// The fields of one `Span`.
fn encode_span(record: &SpanRecord, out: &mut Vec<u8>) {
    bytes_field(1, &record.trace_id(), out);
    bytes_field(2, &record.span_id(), out);
    let mut flags = FLAG_SAMPLED | FLAG_HAS_IS_REMOTE;
    if let Some((parent, remote)) = record.parent() {
        bytes_field(4, &parent, out);
        if remote {
            flags |= FLAG_IS_REMOTE;
        }
    }
    let (prefix, name) = record.name();
    string_field(5, prefix, name, out);
    encode_key(6, WireType::Varint, out);
    encode_varint(
        if record.is_client() {
            KIND_CLIENT
        } else {
            KIND_INTERNAL
        },
        out,
    );
    let (start, end) = record.times_unix_nano();
    encode_key(7, WireType::SixtyFourBit, out);
    out.put_u64_le(start);
    encode_key(8, WireType::SixtyFourBit, out);
    out.put_u64_le(end);
    record.attributes(&mut Fields {
        tag: SPAN_ATTRIBUTES,
        out,
    });
    encode_key(15, WireType::LengthDelimited, out);
    match record.error() {
        Some(message) => {
            let len = string_len(message.len()) + key_len(3) + encoded_len_varint(STATUS_ERROR);
            encode_varint(len as u64, out);
            string_field(2, "", message, out);
            encode_key(3, WireType::Varint, out);
            encode_varint(STATUS_ERROR, out);
        }
        None => encode_varint(0, out),
    }
    encode_key(16, WireType::ThirtyTwoBit, out);
    out.put_u32_le(flags);
}

/// Writes attributes as the `KeyValue`s of field `tag` of a message.
struct Fields<'a> {
    tag: u32,
    out: &'a mut Vec<u8>,
}

impl AttributeSink for Fields<'_> {
    fn attribute(&mut self, prefix: &'static str, key: &str, value: AttributeValue<'_>) {
        let out = &mut *self.out;
        let any = match value {
            AttributeValue::Str(s) => string_len(s.len()),
            AttributeValue::Bool(_) => key_len(2) + 1,
            AttributeValue::Int(i) => key_len(3) + encoded_len_varint(i as u64),
            AttributeValue::Double(_) => key_len(4) + 8,
        };
        let key_value = string_len(prefix.len() + key.len())
            + key_len(2)
            + encoded_len_varint(any as u64)
            + any;
        encode_key(self.tag, WireType::LengthDelimited, out);
        encode_varint(key_value as u64, out);
        string_field(1, prefix, key, out);
        encode_key(2, WireType::LengthDelimited, out);
        encode_varint(any as u64, out);
        match value {
            AttributeValue::Str(s) => string_field(1, "", s, out),
            AttributeValue::Bool(b) => {
                encode_key(2, WireType::Varint, out);
                encode_varint(u64::from(b), out);
            }
            AttributeValue::Int(i) => {
                encode_key(3, WireType::Varint, out);
                encode_varint(i as u64, out);
            }
            AttributeValue::Double(d) => {
                encode_key(4, WireType::SixtyFourBit, out);
                out.put_f64_le(d);
            }
        }
    }
}

/// The encoded length of a string or bytes field of `len` bytes with a one-byte key.
fn string_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// A string field whose text is `prefix` followed by `text`.
fn string_field(tag: u32, prefix: &str, text: &str, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint((prefix.len() + text.len()) as u64, out);
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A bytes field, or an embedded message's (its fields encoded in `bytes`).
fn bytes_field(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use opentelemetry::InstrumentationScope;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use prost::Message as _;

    use super::*;
    use crate::data::spans::sample_records;

    /// What the OpenTelemetry SDK's exporter would send for `records`.
    fn through_the_sdk(records: &[SpanRecord], resource: &Resource) -> ExportTraceServiceRequest {
        let scope = InstrumentationScope::builder("dspex")
            .with_version("1.2.3")
            .build();
        let data = records.iter().map(|r| r.to_span_data(&scope)).collect();
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(data, &resource.into()),
        }
    }

    #[test]
    fn the_request_decodes_to_exactly_what_the_spans_hold() {
        let resource = Resource::builder().with_service_name("otlp-test").build();
        let mut encoder = OtlpEncoder::new(&resource, "dspex", "1.2.3");
        let mut out = Vec::new();
        // Contents whose lengths take one, two and three bytes of varint; then the buffers
        // kept from a larger batch encode a smaller one.
        for content_bytes in [0, 100, 20_000, 10] {
            let records = sample_records(content_bytes);
            encoder.encode(&records, &mut out);
            let decoded = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
            assert_eq!(decoded, through_the_sdk(&records, &resource));

            let spans = &decoded.resource_spans[0].scope_spans[0].spans;
            assert_eq!(spans.len(), records.len());
            assert_eq!(spans[0].name, "invoke_workflow Thinker");
            assert!(spans[0].parent_span_id.is_empty());
            assert_eq!(spans[1].parent_span_id, 1u64.to_be_bytes());
            let attribute = |span: usize, key: &str| {
                spans[span]
                    .attributes
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| kv.value.clone()?.value)
            };
            assert_eq!(attribute(1, "dspex.param.i"), Some(Any::IntValue(-3)));
            assert_eq!(attribute(1, "dspex.param.f"), Some(Any::DoubleValue(0.7)));
            assert_eq!(attribute(1, "dspex.param.b"), Some(Any::BoolValue(true)));
            assert_eq!(
                attribute(2, "gen_ai.usage.input_tokens"),
                Some(Any::IntValue(i64::MAX))
            );
            assert_eq!(
                attribute(2, "gen_ai.input.messages"),
                Some(Any::StringValue("m".repeat(content_bytes)))
            );
            assert_eq!(spans[3].name, "chat ");
            assert_eq!(spans[3].status.as_ref().unwrap().code, 2);
            assert_eq!(spans[4].flags & FLAG_IS_REMOTE, FLAG_IS_REMOTE);
            assert_eq!(spans[2].flags & FLAG_IS_REMOTE, 0);
            assert_eq!(spans[2].kind, KIND_CLIENT as i32);
        }
    }

    #[test]
    fn an_empty_batch_is_a_request_without_spans() {
        let resource = Resource::builder().with_service_name("otlp-test").build();
        let mut out = vec![1, 2, 3];
        OtlpEncoder::new(&resource, "dspex", "1.2.3").encode(&[], &mut out);
        let decoded = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
        assert!(decoded.resource_spans[0].scope_spans[0].spans.is_empty());
        assert_eq!(
            decoded.resource_spans[0].scope_spans[0]
                .scope
                .as_ref()
                .unwrap()
                .name,
            "dspex"
        );
    }
}
