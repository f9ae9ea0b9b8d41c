// Checking a viewer config in the browser. The schema's source of truth is the msgspec Struct
// in proto/viewer.py (JSON Schema in docs/schemas/); this mirrors it field by field so that a
// bad or unknown field is reported once, readably, and dropped: the object is still shown with
// the defaults for whatever was wrong. A viewer must never go blank because of its settings.

const UP_AXES = ["x", "-x", "y", "-y", "z", "-z"];

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const isVec3 = (v) => Array.isArray(v) && v.length === 3 && v.every(isNum);
const isBool = (v) => typeof v === "boolean";
const isStr = (v) => typeof v === "string";

// field -> [check, what it must be]
const CAMERA = {
  position: [isVec3, "three numbers"],
  target: [isVec3, "three numbers"],
  up: [isVec3, "three numbers"],
  fov: [(v) => isNum(v) && v > 1 && v < 170, "a vertical field of view in degrees (1-170)"],
  near: [(v) => isNum(v) && v > 0, "a positive number"],
  far: [(v) => isNum(v) && v > 0, "a positive number"],
  azimuth: [(v) => isNum(v) && Math.abs(v) <= 360, "degrees (-360 to 360)"],
  elevation: [(v) => isNum(v) && v >= -89 && v <= 89, "degrees between -89 and 89"],
  distance: [(v) => isNum(v) && v > 0, "a positive multiple of the framing distance"],
};
const BOUNDS = {
  min: [isVec3, "three numbers"],
  max: [isVec3, "three numbers"],
  center: [isVec3, "three numbers"],
  radius: [(v) => isNum(v) && v > 0, "a positive number"],
};
const LIMITS = {
  min_distance: [(v) => isNum(v) && v > 0, "a positive multiple of the framing distance"],
  max_distance: [(v) => isNum(v) && v > 0, "a positive multiple of the framing distance"],
  min_elevation: [(v) => isNum(v) && v >= -89 && v <= 89, "degrees between -89 and 89"],
  max_elevation: [(v) => isNum(v) && v >= -89 && v <= 89, "degrees between -89 and 89"],
  zoom: [isBool, "true or false"],
};
const UI = {
  fullscreen: [isBool, "true or false"],
  progress: [isBool, "true or false"],
  poster: [isBool, "true or false"],
  hotspots: [isBool, "true or false"],
};
const HOTSPOT = {
  position: [isVec3, "three numbers"],
  label: [(v) => isStr(v) && v.length > 0 && v.length <= 200, "a text of 1-200 characters"],
  description: [(v) => isStr(v) && v.length <= 2000, "a text of at most 2000 characters"],
};
const FILE = {
  format: [isStr, "a format name"],
  url: [isStr, "a URL"],
  bytes: [isNum, "a number"],
  sha256: [isStr, "a hex digest"],
  content_type: [isStr, "a media type"],
  up: [(v) => UP_AXES.includes(v), `one of ${UP_AXES.join(", ")}`],
};

const TOP = {
  version: [isNum, "a number"],
  object_id: [isStr, "a text"],
  name: [isStr, "a text"],
  model_version: [isNum, "a number"],
  gaussians: [isNum, "a number"],
  thumbnail: [isStr, "a URL"],
  up: [(v) => UP_AXES.includes(v), `one of ${UP_AXES.join(", ")}`],
  rotation: [(v) => isVec3(v) && v.every((d) => Math.abs(d) <= 360), "three angles in degrees (x, y, z)"],
  background: [(v) => isStr(v) && CSS.supports("color", v), "a CSS colour"],
  auto_rotate: [(v) => isBool(v) || (isNum(v) && Math.abs(v) <= 60), "true, false or degrees per second (at most 60)"],
  camera: [nested(CAMERA), "an object"],
  bounds: [nested(BOUNDS), "an object"],
  limits: [nested(LIMITS), "an object"],
  ui: [nested(UI), "an object"],
  hotspots: [listOf(HOTSPOT), "a list of hotspots"],
  files: [listOf(FILE), "a list of files"],
};

function nested(spec) {
  const check = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  check.spec = spec;
  return check;
}

function listOf(spec) {
  const check = (v) => Array.isArray(v);
  check.itemSpec = spec;
  return check;
}

function clean(obj, spec, path, errors) {
  const out = {};
  for (const [key, value] of Object.entries(obj)) {
    const where = path ? `${path}.${key}` : key;
    const rule = spec[key];
    if (!rule) {
      errors.push(`unknown field "${where}" (ignored)`);
      continue;
    }
    if (value === null) continue; // null means "use the default"
    const [check, what] = rule;
    if (!check(value)) {
      errors.push(`"${where}" must be ${what}, got ${JSON.stringify(value)} (using the default)`);
      continue;
    }
    if (check.spec) out[key] = clean(value, check.spec, where, errors);
    else if (check.itemSpec) {
      out[key] = [];
      value.forEach((item, i) => {
        if (item === null || typeof item !== "object" || Array.isArray(item)) {
          errors.push(`"${where}[${i}]" must be an object (ignored)`);
          return;
        }
        out[key].push(clean(item, check.itemSpec, `${where}[${i}]`, errors));
      });
    } else out[key] = value;
  }
  return out;
}

/** The usable part of a config and the list of what was wrong with it. Never throws. */
export function checkConfig(raw) {
  const errors = [];
  if (raw === undefined || raw === null) return { config: {}, errors };
  if (typeof raw !== "object" || Array.isArray(raw)) {
    errors.push(`the config must be a JSON object, got ${Array.isArray(raw) ? "a list" : typeof raw}`);
    return { config: {}, errors };
  }
  const config = clean(raw, TOP, "", errors);
  const cam = config.camera;
  if (cam && (cam.position || cam.target) && !(cam.position && cam.target)) {
    errors.push('"camera.position" and "camera.target" go together (both ignored)');
    delete cam.position;
    delete cam.target;
  }
  for (const h of config.hotspots || []) {
    if (!h.position || !h.label) errors.push("a hotspot needs a position and a label (it is not shown)");
  }
  if (config.hotspots) config.hotspots = config.hotspots.filter((h) => h.position && h.label);
  return { config, errors };
}
