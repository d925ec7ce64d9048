// Projects Natural Earth countries (npm world-atlas) once, for scripts/build_world_map.py.
//
// Prints JSON on stdout: the map's size and, per country feature, its ISO 3166-1 numeric
// id, its name and its rings in map units (Equal Earth, fitted to WIDTH, Antarctica left
// out), plus a centroid for every 1:50m country, so that countries too small for the
// 1:110m shapes can be drawn as dots. Python maps ids to alpha-2 and writes the data file.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { geoCentroid, geoEqualEarth, geoPath } from "d3-geo";
import { feature } from "topojson-client";

const WIDTH = 1000;
// A margin so that dots on the map's edge (Tuvalu, Samoa) are drawn whole.
const PAD = 8;
const ANTARCTICA = "010";
// Countries and territories in campaign.geo that neither the 1:110m nor the 1:50m shapes
// carry on their own (Tuvalu, Gibraltar, the French overseas departments inside France's
// shape...): an approximate [longitude, latitude] of each, so they can get a dot.
const EXTRA_POINTS = {
  BQ: [-68.26, 12.18], BV: [3.41, -54.42], CC: [96.87, -12.16], CX: [105.69, -10.45],
  GF: [-53.13, 3.93], GI: [-5.35, 36.14], GP: [-61.55, 16.25], MQ: [-61.02, 14.64],
  RE: [55.53, -21.13], SJ: [16.0, 78.5], TK: [-171.85, -9.2], TV: [179.2, -8.52],
  YT: [45.15, -12.83],
};
const require = createRequire(import.meta.url);
const load = (name) => JSON.parse(readFileSync(require.resolve(`world-atlas/${name}`), "utf8"));

const countries = (topology) => feature(topology, topology.objects.countries).features;
const small = countries(load("countries-110m.json")).filter((f) => f.id !== ANTARCTICA);
const detailed = countries(load("countries-50m.json")).filter((f) => f.id !== ANTARCTICA);

const all = { type: "FeatureCollection", features: small };
const projection = geoEqualEarth().fitWidth(WIDTH - 2 * PAD, all);
const [tx, ty] = projection.translate();
projection.translate([tx + PAD, ty + PAD]);
const [, [, bottom]] = geoPath(projection).bounds(all);

// A path context that keeps the projected (and antimeridian-clipped) rings as arrays.
function ringsOf(geometry) {
  const rings = [];
  let ring = null;
  const context = {
    moveTo(x, y) { ring = [[x, y]]; rings.push(ring); },
    lineTo(x, y) { ring.push([x, y]); },
    closePath() { ring = null; },
    arc() {},
  };
  geoPath(projection, context)(geometry);
  return rings;
}

const output = {
  width: WIDTH,
  height: Math.ceil(bottom + PAD),
  features: small.map((f) => ({ id: f.id ?? null, name: f.properties.name, rings: ringsOf(f) })),
  centroids: detailed.map((f) => ({ id: f.id ?? null, name: f.properties.name, point: projection(geoCentroid(f)) })),
  points: Object.fromEntries(Object.entries(EXTRA_POINTS).map(([code, lonLat]) => [code, projection(lonLat)])),
};
process.stdout.write(JSON.stringify(output));
