// Reads the attribute column names of a declarations file in the browser, before uploading it,
// so the column-mapping form can offer them: zipped shapefiles (the .dbf header inside the zip)
// and GeoJSON (the first feature's properties). Other formats (GeoPackage, GML, GeoParquet)
// return null and the form takes typed names. (No CSV: declarations need geometries, and the
// form refuses a CSV before reading it.)

async function inflateHead(bytes: Uint8Array, method: number, want: number): Promise<Uint8Array> {
  if (method === 0) return bytes.subarray(0, want);
  if (method !== 8 || typeof DecompressionStream === "undefined") throw new Error("unsupported");
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < want) {
    const { value, done } = await reader.read();
    if (done || !value) break;
    chunks.push(value);
    size += value.length;
  }
  void reader.cancel().catch(() => undefined);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function dbfFields(head: Uint8Array): string[] {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const headerLength = view.getUint16(8, true);
  const names: string[] = [];
  const decoder = new TextDecoder("latin1");
  for (let at = 32; at + 32 <= Math.min(headerLength, head.length); at += 32) {
    if (head[at] === 0x0d) break;
    const raw = head.subarray(at, at + 11);
    const end = raw.indexOf(0);
    names.push(decoder.decode(end >= 0 ? raw.subarray(0, end) : raw).trim());
  }
  return names.filter(Boolean);
}

async function zipShapefileColumns(file: File): Promise<string[] | null> {
  const buffer = new Uint8Array(await file.arrayBuffer());
  const view = new DataView(buffer.buffer);
  let eocd = -1;
  for (let i = buffer.length - 22; i >= Math.max(0, buffer.length - 65_557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) return null;
  const count = view.getUint16(eocd + 10, true);
  let at = view.getUint32(eocd + 16, true);
  const decoder = new TextDecoder();
  for (let n = 0; n < count && at + 46 <= buffer.length; n++) {
    if (view.getUint32(at, true) !== 0x02014b50) return null;
    const method = view.getUint16(at + 10, true);
    const compressed = view.getUint32(at + 20, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const local = view.getUint32(at + 42, true);
    const name = decoder.decode(buffer.subarray(at + 46, at + 46 + nameLength));
    if (name.toLowerCase().endsWith(".dbf") && !name.includes("__MACOSX")) {
      const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
      const head = await inflateHead(buffer.subarray(dataStart, dataStart + compressed), method, 32 * 256);
      return dbfFields(head);
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  return null;
}

/** The attribute columns of `file`, or null when the browser cannot read them. */
export async function fileColumns(file: File): Promise<string[] | null> {
  const name = file.name.toLowerCase();
  try {
    if (name.endsWith(".zip")) return await zipShapefileColumns(file);
    if (name.endsWith(".dbf")) return dbfFields(new Uint8Array(await file.slice(0, 32 * 256).arrayBuffer()));
    if ((name.endsWith(".geojson") || name.endsWith(".json")) && file.size < 200_000_000) {
      const doc = JSON.parse(await file.text()) as { features?: { properties?: Record<string, unknown> }[] };
      const props = doc.features?.[0]?.properties;
      return props ? Object.keys(props) : null;
    }
  } catch {
    return null;
  }
  return null;
}

const ID_HINTS = [/^(parcel|field|ori)_?id$/i, /^id_?parcel/i, /parcel/i, /^id$/i, /field/i];
const HOLDING_HINTS = [/^(holding|farm|hold)_?id$/i, /holding/i, /farm/i, /hold/i];
const CROP_HINTS = [/^crop_?code$/i, /^ori_crop$/i, /crop/i, /culture/i, /^code$/i];

/** The column that best matches a role, by the usual names of LPIS/GSAA exports. */
export function guessColumn(columns: string[], role: "parcel" | "holding" | "crop"): string {
  const hints = role === "parcel" ? ID_HINTS : role === "holding" ? HOLDING_HINTS : CROP_HINTS;
  for (const hint of hints) {
    const found = columns.find((c) => hint.test(c) && (role !== "parcel" || !/hold|farm/i.test(c)));
    if (found) return found;
  }
  return "";
}
