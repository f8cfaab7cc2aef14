// Reads an fbsave Zarr v3 / OME-NGFF 0.5 dataset with zarrita (npm, pinned in tests/package.json;
// a reader nobody here wrote) and checks every frame against the sim camera's counter pattern:
// pixel k of the frame with camera frame id f holds (f + k) mod 2^(8 * bytes per sample).
// Frames are read in the order of the "framebroker" columns: frame i of the array (a sequence's:
// the plane at the frame's index [t, c, z]) must be the counter frame of camera_frame_id[i].
//
// usage: node check_zarr3.mjs PATH   (NODE_PATH or tests/node_modules must hold zarrita)
// prints one JSON object: frames (read), shape, dtype, seqs, missed (the missed seqs listed),
// bad_frames, frames_written, frames_missed, complete, codecs (the array's codec names, outer
// first, then the sharding codec's inner ones), ngff_errors (NGFF 0.5 keys missing or wrong).
import { readFileSync } from "node:fs";
import * as zarr from "zarrita";
import { FileSystemStore } from "@zarrita/storage";

const path = process.argv[2];
if (!path) {
  console.error("usage: node check_zarr3.mjs PATH");
  process.exit(2);
}

const root = zarr.root(new FileSystemStore(path));
const group = await zarr.open(root, { kind: "group" });
const attrs = group.attrs;
const ome = attrs.ome ?? {};
const fb = attrs.framebroker ?? {};
const errors = [];
const need = (ok, what) => ok || errors.push(what);

// NGFF 0.5: "ome" with its version once, multiscales with axes, datasets and their transforms.
need(ome.version === "0.5", `ome.version is ${JSON.stringify(ome.version)}, not "0.5"`);
const ms = (ome.multiscales ?? [])[0];
need(ms !== undefined, "no ome.multiscales[0]");
const axes = ms?.axes ?? [];
need(axes.length >= 3, "ome.multiscales[0].axes has fewer than 3 axes");
need(axes[0]?.name === "t" && axes[0]?.type === "time", "the first axis is not t (time)");
need(axes.at(-1)?.name === "x" && axes.at(-2)?.name === "y", "the last axes are not y, x");
const ds = ms?.datasets?.[0];
need(ds?.path === "0", "ome.multiscales[0].datasets[0].path is not \"0\"");
const scale = ds?.coordinateTransformations?.[0];
need(scale?.type === "scale" && scale?.scale?.length === axes.length,
     "datasets[0].coordinateTransformations[0] is not a scale with one entry per axis");
need(ms?.version === undefined, "multiscales[0] has a version (NGFF 0.5 states it in ome)");
for (const col of ["seq", "camera_frame_id", "mono_ns", "realtime_ns"])
  need(Array.isArray(fb.frames?.[col]), `framebroker.frames.${col} is missing`);
need(Array.isArray(fb.missed_seqs), "framebroker.missed_seqs is missing");

const arr = await zarr.open(root.resolve(ds?.path ?? "0"), { kind: "array" });
const codecs = [];
const arrayJson = JSON.parse(readFileSync(`${path}/${ds?.path ?? "0"}/zarr.json`, "utf8"));
for (const c of arrayJson.codecs) {
  codecs.push(c.name);
  if (c.name === "sharding_indexed") for (const i of c.configuration.codecs) codecs.push(i.name);
}
need(arr.shape.length === axes.length, "the array's dimensions differ from the axes");

const ids = fb.frames?.camera_frame_id ?? [];
const index = fb.frames?.index;  // a sequence's [t, c, z] per frame
const bits = Number(arr.dtype.replace(/\D/g, ""));  // uint16: 16
const modulus = 2 ** Math.min(bits, 32);
let frames = 0, bad = 0;
const sequence = fb.sequence !== undefined;
const count = sequence ? ids.length : arr.shape[0];
need(sequence || count <= ids.length, `shape[0] ${count} exceeds the ${ids.length} frames listed`);
for (let i = 0; i < Math.min(count, ids.length); ++i) {
  const at = sequence ? [...index[i], null, null] : [i, ...arr.shape.slice(1).map(() => null)];
  const chunk = await zarr.get(arr, at);
  const f = ids[i];
  let ok = true;
  for (let k = 0; k < chunk.data.length && ok; ++k)
    ok = Number(chunk.data[k]) === (f + k) % modulus;
  bad += ok ? 0 : 1;
  ++frames;
}

console.log(JSON.stringify({
  frames,
  shape: arr.shape,
  dtype: arr.dtype,
  chunks: arr.chunks,
  seqs: fb.frames?.seq ?? [],
  missed: fb.missed_seqs ?? [],
  bad_frames: bad,
  frames_written: fb.frames_written,
  frames_missed: fb.frames_missed,
  complete: fb.complete,
  codecs,
  ngff_errors: errors,
}));
