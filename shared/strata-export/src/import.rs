//! Imports (ImportTable, `strata import`): every object under a prefix of
//! a bucket (or directory), CSV, DynamoDB JSON or ION, plain, gzip or
//! zstd, ingested into a new table as SSTs.
//!
//! Each object is read in ranged GETs and parsed on a blocking thread as a
//! stream (decompressor, then lines or Ion values); parsed items are
//! buffered up to [`BUFFER_BYTES`] and ingested (`Engine::ingest_items`:
//! sorted per partition, one sorted run each, no commit per item). Memory:
//! the buffer, one GET and the parser's state, whatever the input's size.
//! A line that does not parse, or whose item the table would refuse (no
//! key, a mistyped key, too large), is counted and logged as DynamoDB logs
//! it to CloudWatch, and nothing of it is imported.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStore;
use serde_json::{json, Value as Json};
use strata_engine::number::Number;
use strata_engine::value::{KeyType, Value};
use strata_engine::{Engine, Item};
use tokio::sync::mpsc;

use crate::Progress;

/// Item bytes buffered before they are ingested.
pub const BUFFER_BYTES: usize = 64 << 20;
/// Bytes per GET of an input object.
const GET_BYTES: u64 = 8 << 20;
/// Items handed from the parser to the ingester at a time.
const BATCH: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    DynamoDbJson,
    Ion,
}

impl InputFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CSV" => Some(Self::Csv),
            "DYNAMODB_JSON" => Some(Self::DynamoDbJson),
            "ION" => Some(Self::Ion),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NONE" => Some(Self::None),
            "GZIP" => Some(Self::Gzip),
            "ZSTD" => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// CSV options: the delimiter, and the header (else each file's first line).
#[derive(Debug, Clone)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub header: Option<Vec<String>>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            header: None,
        }
    }
}

/// What to import, from where, into which (existing, empty) table.
#[derive(Clone)]
pub struct ImportSpec {
    pub table: String,
    pub source: Arc<dyn ObjectStore>,
    /// The bucket's name, for the log lines.
    pub bucket: String,
    pub prefix: String,
    pub format: InputFormat,
    pub compression: Compression,
    pub csv: CsvOptions,
    /// Names the error log lines.
    pub import_arn: String,
    /// The indexes the table will have: their key attributes are typed in
    /// CSV, and an item whose index key has the wrong type is refused, as
    /// DynamoDB refuses it.
    pub indexes: Vec<strata_engine::IndexDef>,
    /// Only the object named exactly `prefix` (`strata import` of one file).
    pub exact: bool,
}

/// ImportSummary's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub processed_bytes: u64,
    pub processed_items: u64,
    pub imported_items: u64,
    pub errors: u64,
}

/// A parsed line: the item, or why it is refused.
type Parsed = (u64, Result<Item, String>);

/// Imports every object under the spec's prefix into its table.
pub async fn import(
    engine: &Engine,
    spec: &ImportSpec,
    progress: Arc<dyn Progress>,
) -> Result<ImportOutcome, String> {
    let desc = engine
        .describe_table(&spec.table)
        .await
        .map_err(|e| e.to_string())?;
    // CSV cells are strings, but for the key attributes of the table and
    // its indexes, typed as the table defines them.
    let mut key_types: Vec<(String, KeyType)> = desc
        .key_schema
        .attributes()
        .map(|a| (a.name.clone(), a.key_type))
        .collect();
    for ix in desc.indexes.iter().chain(&spec.indexes) {
        key_types.extend(
            ix.key_schema
                .attributes()
                .map(|a| (a.name.clone(), a.key_type)),
        );
    }
    // S3KeyPrefix is a prefix of the key, not a directory: list the
    // directory it is in, keep the keys it starts.
    let dir = match spec.prefix.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => Some(Path::from(dir)),
        _ => None,
    };
    let mut objects = Vec::new();
    let mut listing = spec.source.list(dir.as_ref());
    while let Some(meta) = futures::StreamExt::next(&mut listing).await {
        let meta = meta.map_err(|e| format!("listing the import's objects: {e}"))?;
        let key = meta.location.as_ref();
        if key == spec.prefix || (!spec.exact && key.starts_with(spec.prefix.as_str())) {
            objects.push(meta);
        }
    }
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    progress.total(objects.iter().map(|o| o.size).sum());
    let mut outcome = ImportOutcome::default();
    // Items and where they came from (for the error log), across objects.
    let mut buffer: Vec<(Arc<str>, u64, Item)> = Vec::new();
    let mut buffered = 0usize;
    for object in objects {
        let key: Arc<str> = Arc::from(object.location.as_ref());
        let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(2);
        let (item_tx, mut item_rx) = mpsc::channel::<Vec<Parsed>>(4);
        let (format, compression, csv, types) = (
            spec.format,
            spec.compression,
            spec.csv.clone(),
            key_types.clone(),
        );
        let parser = tokio::task::spawn_blocking(move || {
            let input = ChunkReader {
                rx: chunk_rx,
                current: Bytes::new(),
            };
            parse(input, format, compression, &csv, &types, &item_tx)
        });
        let location = object.location.clone();
        let size = object.size;
        let source = Arc::clone(&spec.source);
        let fetch = async move {
            let mut at = 0;
            while at < size {
                let end = (at + GET_BYTES).min(size);
                let bytes = source
                    .get_range(&location, at..end)
                    .await
                    .map_err(|e| format!("reading {location}: {e}"))?;
                if chunk_tx.send(bytes).await.is_err() {
                    break; // the parser stopped (a broken file): it says why
                }
                at = end;
            }
            Ok::<(), String>(())
        };
        let consume = async {
            while let Some(batch) = item_rx.recv().await {
                for (line, parsed) in batch {
                    outcome.processed_items += 1;
                    let parsed = parsed.and_then(|item| {
                        strata_engine::index::check_index_keys(&spec.indexes, &item).map(|_| item)
                    });
                    match parsed {
                        Ok(item) => {
                            buffered += strata_engine::value::item_size(&item);
                            buffer.push((Arc::clone(&key), line, item));
                        }
                        Err(e) => {
                            outcome.errors += 1;
                            log_error(spec, object.location.as_ref(), line, &e);
                        }
                    }
                }
                if buffered >= BUFFER_BYTES {
                    if let Err(e) = ingest(engine, spec, &mut buffer, &mut outcome).await {
                        // The parser and the fetcher wait on this end:
                        // closing it stops them (their sends fail).
                        item_rx.close();
                        return Err(e);
                    }
                    buffered = 0;
                }
            }
            Ok::<(), String>(())
        };
        let (fetched, consumed) = tokio::join!(fetch, consume);
        let parsed = parser
            .await
            .map_err(|e| format!("the parser failed: {e}"))?;
        consumed?;
        fetched?;
        if let Err(e) = parsed {
            // The rest of the object cannot be read (a broken compression
            // stream, a malformed Ion value): one error, the lines before it stay.
            outcome.errors += 1;
            log_error(spec, object.location.as_ref(), outcome.processed_items, &e);
        }
        outcome.processed_bytes += object.size;
        progress.advance(object.size);
    }
    ingest(engine, spec, &mut buffer, &mut outcome).await?;
    // Each buffer became a level-0 run per partition: merge them now, as
    // flushes are merged, rather than leave reads to look through them all.
    if let Err(e) = engine.compact(&spec.table).await {
        tracing::warn!(table = %spec.table, error = %e, "compacting an import failed; the background compaction will");
    }
    Ok(outcome)
}

/// Ingests the buffered items (one sorted run per partition).
async fn ingest(
    engine: &Engine,
    spec: &ImportSpec,
    buffer: &mut Vec<(Arc<str>, u64, Item)>,
    outcome: &mut ImportOutcome,
) -> Result<(), String> {
    if buffer.is_empty() {
        return Ok(());
    }
    let mut from = Vec::with_capacity(buffer.len());
    let mut items = Vec::with_capacity(buffer.len());
    for (key, line, item) in std::mem::take(buffer) {
        from.push((key, line));
        items.push(item);
    }
    let done = engine
        .ingest_items(&spec.table, items)
        .await
        .map_err(|e| format!("ingesting into {}: {e}", spec.table))?;
    outcome.imported_items += done.items;
    for (i, why) in done.refused {
        outcome.errors += 1;
        if let Some((key, line)) = from.get(i) {
            log_error(spec, key, *line, &why);
        }
    }
    Ok(())
}

/// One line of the import's error log, as DynamoDB writes it to CloudWatch.
fn log_error(spec: &ImportSpec, key: &str, line: u64, why: &str) {
    let entry = json!({
        "itemS3Pointer": {"bucket": spec.bucket, "key": key, "itemIndex": line},
        "importArn": spec.import_arn,
        "errorMessages": [why],
    });
    tracing::warn!(target: "strata::import", "{entry}");
}

/// The object's bytes as the fetcher hands them over.
struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Parses one object, sending its items in batches; an error that stops
/// the object (not a bad line) is returned.
fn parse(
    input: ChunkReader,
    format: InputFormat,
    compression: Compression,
    csv: &CsvOptions,
    key_types: &[(String, KeyType)],
    out: &mpsc::Sender<Vec<Parsed>>,
) -> Result<(), String> {
    let decoded: Box<dyn Read> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| format!("not a zstd stream: {e}"))?,
        ),
    };
    let reader = Guard {
        inner: decoded,
        line: 0,
        ion: (format == InputFormat::Ion).then(IonScan::default),
    };
    let mut batch = Vec::with_capacity(BATCH);
    let send = |parsed: Parsed, batch: &mut Vec<Parsed>| -> Result<(), String> {
        batch.push(parsed);
        if batch.len() >= BATCH {
            out.blocking_send(std::mem::take(batch))
                .map_err(|_| "the import stopped".to_string())?;
        }
        Ok(())
    };
    match format {
        InputFormat::DynamoDbJson => {
            for (i, line) in BufReader::new(reader).lines().enumerate() {
                let line = line.map_err(|e| format!("reading: {e}"))?;
                if line.trim().is_empty() {
                    continue;
                }
                send((i as u64 + 1, dynamodb_json_item(&line)), &mut batch)?;
            }
        }
        InputFormat::Csv => {
            let mut rows = csv::ReaderBuilder::new()
                .delimiter(csv.delimiter)
                .has_headers(csv.header.is_none())
                .flexible(true)
                .from_reader(reader);
            let header: Vec<String> = match &csv.header {
                Some(h) => h.clone(),
                None => rows
                    .headers()
                    .map_err(|e| format!("reading the CSV header: {e}"))?
                    .iter()
                    .map(str::to_string)
                    .collect(),
            };
            for (i, row) in rows.records().enumerate() {
                let line = i as u64 + 1 + u64::from(csv.header.is_none());
                let parsed = match row {
                    Ok(r) => csv_item(&header, &r, key_types),
                    Err(e) => Err(format!("Unable to parse the CSV line: {e}")),
                };
                send((line, parsed), &mut batch)?;
            }
        }
        InputFormat::Ion => {
            let values = ion_rs::Element::iter(BufReader::new(reader))
                .map_err(|e| format!("not Ion: {e}"))?;
            for (i, v) in values.enumerate() {
                let v = v.map_err(|e| format!("Unable to parse the Ion value: {e}"))?;
                send((i as u64 + 1, ion_item(&v)), &mut batch)?;
            }
        }
    }
    if !batch.is_empty() {
        out.blocking_send(batch)
            .map_err(|_| "the import stopped".to_string())?;
    }
    Ok(())
}

/// The longest line an import reads (a line is held whole while it is
/// parsed): far above a 400 KB item in any of the formats.
const MAX_LINE: usize = 8 << 20;
/// The deepest Ion nesting an import reads (the Ion reader recurses):
/// above DynamoDB's 32 levels, with the `{Item: ...}` wrapper and blobs.
const MAX_ION_DEPTH: usize = 64;

/// Refuses input that would make a parser hold or recurse without bound:
/// a line longer than [`MAX_LINE`], and for Ion nesting deeper than
/// [`MAX_ION_DEPTH`] or binary Ion (DynamoDB imports text Ion). The object
/// ends there with one error; the lines before it stay.
struct Guard<R> {
    inner: R,
    line: usize,
    ion: Option<IonScan>,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line = 0;
            } else {
                self.line += 1;
                if self.line > MAX_LINE {
                    return Err(std::io::Error::other(format!(
                        "a line longer than {MAX_LINE} bytes"
                    )));
                }
            }
            if let Some(scan) = self.ion.as_mut() {
                scan.feed(b).map_err(std::io::Error::other)?;
            }
        }
        Ok(n)
    }
}

/// Text Ion's nesting depth, outside strings and quoted symbols.
#[derive(Default)]
struct IonScan {
    started: bool,
    depth: usize,
    quote: Option<u8>,
    escaped: bool,
}

impl IonScan {
    fn feed(&mut self, b: u8) -> Result<(), String> {
        if !self.started {
            self.started = true;
            if b == 0xE0 {
                return Err("binary Ion: DynamoDB imports text Ion".into());
            }
        }
        if self.escaped {
            self.escaped = false;
            return Ok(());
        }
        match (self.quote, b) {
            (Some(_), b'\\') => self.escaped = true,
            (Some(q), _) if b == q => self.quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => self.quote = Some(b),
            (None, b'[' | b'{' | b'(') => {
                self.depth += 1;
                if self.depth > MAX_ION_DEPTH {
                    return Err(format!("Ion nested deeper than {MAX_ION_DEPTH} levels"));
                }
            }
            (None, b']' | b'}' | b')') => self.depth = self.depth.saturating_sub(1),
            (None, _) => {}
        }
        Ok(())
    }
}

/// A line of DynamoDB JSON: `{"Item": {...}}`, as exports write them.
fn dynamodb_json_item(line: &str) -> Result<Item, String> {
    let v: Json =
        serde_json::from_str(line).map_err(|e| format!("Unable to parse the JSON: {e}"))?;
    let item = v.get("Item").ok_or("The JSON line has no \"Item\"")?;
    strata_api::json::item_from_json(item).map_err(|e| e.message)
}

/// A CSV row: key attributes typed as defined, every other cell a string
/// (an empty cell is no attribute).
fn csv_item(
    header: &[String],
    row: &csv::StringRecord,
    key_types: &[(String, KeyType)],
) -> Result<Item, String> {
    if row.len() > header.len() {
        return Err(format!(
            "The CSV line has {} fields; the header names {}",
            row.len(),
            header.len()
        ));
    }
    let mut item = Item::new();
    for (name, cell) in header.iter().zip(row.iter()) {
        if cell.is_empty() {
            continue;
        }
        let value = match key_types.iter().find(|(n, _)| n == name).map(|(_, t)| *t) {
            Some(KeyType::N) => Value::N(Number::parse(cell).map_err(|e| format!("{name}: {e}"))?),
            Some(KeyType::B) => {
                use base64::Engine as _;
                Value::B(
                    base64::engine::general_purpose::STANDARD
                        .decode(cell)
                        .map_err(|e| format!("{name}: not base64: {e}"))?,
                )
            }
            _ => Value::S(cell.to_string()),
        };
        item.insert(name.clone(), value);
    }
    Ok(item)
}

/// An Ion value as DynamoDB exports items: `{Item: {...}}`, sets annotated
/// `$dynamodb_SS`, `$dynamodb_NS`, `$dynamodb_BS`.
fn ion_item(v: &ion_rs::Element) -> Result<Item, String> {
    let top = v.as_struct().ok_or("The Ion value is not a struct")?;
    let item = top
        .get("Item")
        .and_then(|i| i.as_struct())
        .ok_or("The Ion value has no Item struct")?;
    let mut out = Item::new();
    for (name, value) in item.fields() {
        let name = name.text().ok_or("An Ion field without a name")?;
        out.insert(name.to_string(), ion_value(value, 0)?);
    }
    Ok(out)
}

fn ion_value(v: &ion_rs::Element, depth: usize) -> Result<Value, String> {
    use ion_rs::Value as Ion;
    if depth > strata_engine::value::MAX_NESTING {
        return Err("Nesting Levels have exceeded supported limits".into());
    }
    let set = ["$dynamodb_SS", "$dynamodb_NS", "$dynamodb_BS"]
        .into_iter()
        .find(|a| v.annotations().contains(a));
    let number = |e: &ion_rs::Element| -> Result<Number, String> {
        let text = match e.value() {
            Ion::Int(i) => i.to_string(),
            Ion::Decimal(d) => {
                let c = d.coefficient();
                let sign = if c.sign() == ion_rs::decimal::Sign::Negative {
                    "-"
                } else {
                    ""
                };
                format!("{sign}{}e{}", c.magnitude(), d.exponent())
            }
            Ion::Float(f) => f.to_string(),
            _ => return Err(format!("not a number: {e}")),
        };
        Number::parse(&text).map_err(|e| e.to_string())
    };
    Ok(match (set, v.value()) {
        (Some(kind), Ion::List(list)) => match kind {
            "$dynamodb_SS" => Value::SS(
                list.iter()
                    .map(|e| {
                        e.as_text()
                            .map(str::to_string)
                            .ok_or("a string set member is not text")
                    })
                    .collect::<Result<_, _>>()?,
            ),
            "$dynamodb_NS" => Value::NS(list.iter().map(number).collect::<Result<_, _>>()?),
            _ => Value::BS(
                list.iter()
                    .map(|e| {
                        e.as_blob()
                            .map(<[u8]>::to_vec)
                            .ok_or("a binary set member is not a blob")
                    })
                    .collect::<Result<_, _>>()?,
            ),
        },
        (_, Ion::Null(_)) => Value::Null,
        (_, Ion::Bool(b)) => Value::Bool(*b),
        (_, Ion::Int(_) | Ion::Decimal(_) | Ion::Float(_)) => Value::N(number(v)?),
        (_, Ion::String(s)) => Value::S(s.text().to_string()),
        (_, Ion::Symbol(s)) => Value::S(s.text().unwrap_or_default().to_string()),
        (_, Ion::Blob(b)) => Value::B(b.as_ref().to_vec()),
        (_, Ion::List(list)) => Value::L(
            list.iter()
                .map(|e| ion_value(e, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        (_, Ion::Struct(s)) => Value::M(
            s.fields()
                .map(|(k, e)| {
                    let k = k.text().ok_or("An Ion field without a name")?.to_string();
                    Ok((k, ion_value(e, depth + 1)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        (_, other) => {
            return Err(format!(
                "an Ion {:?} has no DynamoDB type",
                other.ion_type()
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ion_items_as_dynamodb_exports_them() {
        let text = r#"$ion_1_0 {Item:{pk:"a",n:15d-1,i:42,b:{{aGk=}},ss:$dynamodb_SS::["x","y"],ns:$dynamodb_NS::[1,2.5],m:{l:[true,null]}}}"#;
        let v = ion_rs::Element::read_first(text).unwrap().unwrap();
        let item = ion_item(&v).unwrap();
        assert_eq!(item["pk"], Value::S("a".into()));
        assert_eq!(item["n"], Value::N(Number::parse("1.5").unwrap()));
        assert_eq!(item["i"], Value::N(Number::parse("42").unwrap()));
        assert_eq!(item["b"], Value::B(b"hi".to_vec()));
        assert_eq!(item["ss"], Value::SS(vec!["x".into(), "y".into()]));
        assert_eq!(
            item["ns"],
            Value::NS(vec![
                Number::parse("1").unwrap(),
                Number::parse("2.5").unwrap()
            ])
        );
        assert!(
            matches!(&item["m"], Value::M(m) if m["l"] == Value::L(vec![Value::Bool(true), Value::Null]))
        );
    }

    /// Parses `bytes` as an object would be: handed over in chunks.
    fn parse_all(bytes: Vec<u8>, format: InputFormat, compression: Compression) -> Vec<Parsed> {
        let (chunk_tx, chunk_rx) = mpsc::channel(64);
        for c in bytes.chunks(7) {
            chunk_tx.try_send(Bytes::copy_from_slice(c)).ok();
        }
        drop(chunk_tx);
        let (tx, mut rx) = mpsc::channel(64);
        let input = ChunkReader {
            rx: chunk_rx,
            current: Bytes::new(),
        };
        let types = vec![("pk".to_string(), KeyType::S)];
        std::thread::spawn(move || {
            parse(
                input,
                format,
                compression,
                &CsvOptions::default(),
                &types,
                &tx,
            )
        })
        .join()
        .unwrap()
        .unwrap();
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            out.extend(batch);
        }
        out
    }

    #[test]
    fn zstd_and_gzip_streams_decode_in_chunks() {
        let text = "pk,v\na,1\nb,2\n".repeat(3);
        let mut zstd = Vec::new();
        ruzstd::encoding::compress(
            text.as_bytes(),
            &mut zstd,
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        // The first line is the header; its two repeats are rows: 8 in all.
        let rows = parse_all(zstd, InputFormat::Csv, Compression::Zstd);
        assert_eq!(rows.len(), 8);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"{\"Item\":{\"pk\":{\"S\":\"a\"}}}\nnot json\n")
            .unwrap();
        let rows = parse_all(
            gz.finish().unwrap(),
            InputFormat::DynamoDbJson,
            Compression::Gzip,
        );
        assert_eq!(rows.len(), 2);
        assert!(rows[0].1.is_ok() && rows[1].1.is_err());
        assert_eq!(rows[1].0, 2, "errors name their line");
    }

    #[test]
    fn deep_ion_long_lines_and_binary_ion_are_refused() {
        let read = |bytes: Vec<u8>, ion: bool| {
            let mut g = Guard {
                inner: std::io::Cursor::new(bytes),
                line: 0,
                ion: ion.then(IonScan::default),
            };
            std::io::copy(&mut g, &mut std::io::sink()).map(|_| ())
        };
        let deep = format!(
            "{{Item:{{pk:\"a\",l:{}{}}}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(read(deep.into_bytes(), true).is_err());
        let quoted = format!("{{Item:{{pk:\"{}\",s:'''[[''' }}}}", "[".repeat(100));
        assert!(
            read(quoted.into_bytes(), true).is_ok(),
            "brackets in strings do not nest"
        );
        assert!(read(vec![0xE0, 0x01, 0x00, 0xEA], true).is_err());
        assert!(read(vec![b'x'; MAX_LINE + 1], false).is_err());
        assert!(read(
            [vec![b'x'; MAX_LINE], vec![b'\n'], vec![b'x'; 10]].concat(),
            false
        )
        .is_ok());
    }

    #[test]
    fn csv_cells_are_strings_but_keys_are_typed() {
        let header = vec!["pk".to_string(), "n".to_string(), "note".to_string()];
        let types = vec![
            ("pk".to_string(), KeyType::S),
            ("n".to_string(), KeyType::N),
        ];
        let row = csv::StringRecord::from(vec!["a", "7", "hello"]);
        let item = csv_item(&header, &row, &types).unwrap();
        assert_eq!(item["n"], Value::N(Number::parse("7").unwrap()));
        assert_eq!(item["note"], Value::S("hello".into()));
        let bad = csv::StringRecord::from(vec!["a", "seven", "x"]);
        assert!(csv_item(&header, &bad, &types).is_err());
        let short = csv::StringRecord::from(vec!["a", "", ""]);
        assert_eq!(csv_item(&header, &short, &types).unwrap().len(), 1);
    }
}
