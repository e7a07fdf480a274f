/* convgrad explain page: the configuration and the index relation, in the browser.
 *
 * A JavaScript mirror of convgrad.spec (conv_spec / conv_transpose_spec) and
 * convgrad.explain.relation: the same validation, sizes and the one index relation
 *     output position i, kernel tap k  read  input position  i*S + k*D - P_lo
 * from which every contributor list follows. The tests run it in Chromium and compare it with
 * the Python implementation on random configurations.
 *
 * Indices are arrays with the batch axis always present: [n, c, ...spatial], [o, c, ...k].
 */
"use strict";

const ConvGradRelation = (() => {
  const MODES = ["zeros", "reflect", "replicate", "circular"];

  class ConfigError extends Error {}

  const range = (n) => Array.from({ length: n }, (_, i) => i);

  function product(lists) {
    let out = [[]];
    for (const list of lists) {
      const next = [];
      for (const prefix of out) for (const v of list) next.push(prefix.concat([v]));
      out = next;
    }
    return out;
  }

  function perDim(value, nd, name) {
    if (typeof value === "number") return Array(nd).fill(value);
    if (!Array.isArray(value) || value.length !== nd) {
      throw new ConfigError(`${name} must be one integer or ${nd} (one per spatial dim), got ${JSON.stringify(value)}`);
    }
    return value.slice();
  }

  function positive(values, name) {
    for (const v of values) {
      if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${name} must be positive integers, got ${JSON.stringify(values)}`);
    }
    return values;
  }

  function resolvePadding(padding, size, kernel, stride, dilation) {
    const nd = kernel.length;
    if (padding === "valid") return range(nd).map(() => [0, 0]);
    if (padding === "same") {
      return range(nd).map((d) => {
        const keff = dilation[d] * (kernel[d] - 1) + 1;
        const out = Math.ceil(size[d] / stride[d]);
        const total = Math.max((out - 1) * stride[d] + keff - size[d], 0);
        return [Math.floor(total / 2), total - Math.floor(total / 2)];
      });
    }
    if (typeof padding === "string") throw new ConfigError(`padding must be an integer, a list, 'valid' or 'same', got '${padding}'`);
    const items = typeof padding === "number" ? Array(nd).fill(padding) : padding;
    if (!Array.isArray(items) || items.length !== nd) {
      throw new ConfigError(`padding must have one entry per spatial dim (${nd}), got ${JSON.stringify(padding)}`);
    }
    return items.map((p) => {
      const pair = Array.isArray(p) ? p : [p, p];
      if (pair.length !== 2 || !pair.every((v) => Number.isInteger(v) && v >= 0)) {
        throw new ConfigError(`padding must be non-negative integers or [low, high] pairs, got ${JSON.stringify(padding)}`);
      }
      return pair.slice();
    });
  }

  function checkShapes(input, weight) {
    if (!Array.isArray(weight) || weight.length < 3) {
      throw new ConfigError(`weight must have at least 3 dims (out, in/groups, ...kernel), got ${JSON.stringify(weight)}`);
    }
    const nd = weight.length - 2;
    let batched = true;
    if (input.length === nd + 1) {
      input = [1].concat(input);
      batched = false;
    }
    if (input.length !== nd + 2) {
      throw new ConfigError(`input must have ${nd + 2} dims (batch, channels, ${nd} spatial) or ${nd + 1} (unbatched) to match the weight, got ${JSON.stringify(input)}`);
    }
    for (const v of input.concat(weight)) {
      if (!Number.isInteger(v) || v < 0) throw new ConfigError(`shapes must hold non-negative integers, got ${JSON.stringify(input)} and ${JSON.stringify(weight)}`);
    }
    if (weight.slice(2).some((k) => k === 0)) throw new ConfigError(`the kernel has a zero-size dim: ${JSON.stringify(weight)}`);
    if (input.slice(2).some((h) => h === 0)) throw new ConfigError(`the input has a zero-size spatial dim: ${JSON.stringify(input)}`);
    if (input[1] === 0 || weight[0] === 0 || weight[1] === 0) throw new ConfigError("channel counts must be positive");
    return { input, weight, nd, batched };
  }

  /* The spec of the convolution (for transposed=true: of the convolution whose input-gradient it is). */
  function makeSpec(cfg) {
    const { input, weight, nd, batched } = checkShapes(cfg.input, cfg.weight);
    const groups = cfg.groups === undefined ? 1 : cfg.groups;
    if (!Number.isInteger(groups) || groups < 1) throw new ConfigError(`groups must be a positive integer, got ${groups}`);
    const stride = positive(perDim(cfg.stride === undefined ? 1 : cfg.stride, nd, "stride"), "stride");
    const dilation = positive(perDim(cfg.dilation === undefined ? 1 : cfg.dilation, nd, "dilation"), "dilation");
    const mode = cfg.padding_mode || "zeros";
    if (!MODES.includes(mode)) throw new ConfigError(`padding_mode must be one of ${MODES.join(", ")}, got '${mode}'`);
    const kernel = weight.slice(2);
    const keff = kernel.map((k, d) => dilation[d] * (k - 1) + 1);
    const [n, cIn] = input;
    const spec = { nd, batch: n, groups, kernel, stride, dilation, keff, batched, transposed: !!cfg.transposed };
    if (!cfg.transposed) {
      const [cOut, cInG] = weight;
      if (cIn % groups) throw new ConfigError(`groups=${groups} must divide the input channels (${cIn})`);
      if (cOut % groups) throw new ConfigError(`groups=${groups} must divide the output channels (weight[0]=${cOut})`);
      if (cInG * groups !== cIn) throw new ConfigError(`weight[1] must be input channels / groups = ${cIn / groups}, got ${cInG}`);
      const op = cfg.output_padding === undefined ? 0 : cfg.output_padding;
      if (perDim(op, nd, "output_padding").some((v) => v !== 0)) throw new ConfigError("output_padding only applies to a transposed convolution");
      const size = input.slice(2);
      const padding = resolvePadding(cfg.padding === undefined ? 0 : cfg.padding, size, kernel, stride, dilation);
      const out = [];
      for (let d = 0; d < nd; d++) {
        const [lo, hi] = padding[d];
        if (size[d] + lo + hi < keff[d]) {
          throw new ConfigError(`the kernel is larger than the padded input in spatial dim ${d}: D*(K-1)+1 = ${keff[d]} > H+P_lo+P_hi = ${size[d] + lo + hi}`);
        }
        if (mode === "reflect" && (lo >= size[d] || hi >= size[d])) throw new ConfigError(`padding_mode='reflect' needs padding smaller than the input size (dim ${d}: size ${size[d]}, padding ${lo}, ${hi})`);
        if (mode === "circular" && (lo > size[d] || hi > size[d])) throw new ConfigError(`padding_mode='circular' cannot wrap around more than once (dim ${d})`);
        out.push(Math.floor((size[d] + lo + hi - keff[d]) / stride[d]) + 1);
      }
      Object.assign(spec, { inChannels: cIn, outChannels: cOut, inputSize: size, padding, outputSize: out, mode,
        same: cfg.padding === "same" });
    } else {
      if (mode !== "zeros") throw new ConfigError("a transposed convolution has zero padding only");
      const [wIn, cOutG] = weight;
      if (cIn % groups) throw new ConfigError(`groups=${groups} must divide the input channels (${cIn})`);
      if (wIn !== cIn) throw new ConfigError(`weight[0] must equal the input channels (${cIn}); the transposed weight is (in, out/groups, ...k), got ${JSON.stringify(weight)}`);
      let padding = cfg.padding === undefined ? 0 : cfg.padding;
      if (padding === "same") throw new ConfigError("'same' has no single meaning for a transposed convolution");
      padding = resolvePadding(padding === "valid" ? 0 : padding, input.slice(2), kernel, stride, dilation);
      const op = perDim(cfg.output_padding === undefined ? 0 : cfg.output_padding, nd, "output_padding");
      const outSize = [];
      for (let d = 0; d < nd; d++) {
        if (!Number.isInteger(op[d]) || op[d] < 0 || op[d] >= Math.max(stride[d], dilation[d])) {
          throw new ConfigError(`output_padding must be non-negative and smaller than either stride or dilation (dim ${d}: ${op[d]})`);
        }
        const h = (input[2 + d] - 1) * stride[d] - padding[d][0] - padding[d][1] + dilation[d] * (kernel[d] - 1) + op[d] + 1;
        if (h < 1) throw new ConfigError(`the output would be empty in spatial dim ${d} (${h}); reduce the padding`);
        outSize.push(h);
      }
      Object.assign(spec, { inChannels: cOutG * groups, outChannels: cIn, inputSize: outSize, padding,
        outputSize: input.slice(2), mode: "zeros", same: false });
    }
    spec.inPerGroup = spec.inChannels / groups;
    spec.outPerGroup = spec.outChannels / groups;
    spec.padLo = spec.padding.map((p) => p[0]);
    spec.readSpan = range(nd).map((d) => (spec.outputSize[d] - 1) * stride[d] + keff[d]);
    spec.unreadTail = range(nd).map((d) => spec.padding[d][0] + spec.inputSize[d] + spec.padding[d][1] - spec.readSpan[d]);
    spec.usedPadHi = range(nd).map((d) => spec.readSpan[d] - spec.padding[d][0] - spec.inputSize[d]);
    // shapes of the user's arrays (batch axis included)
    const convIn = [n, spec.inChannels].concat(spec.inputSize);
    const convOut = [n, spec.outChannels].concat(spec.outputSize);
    const w = [spec.outChannels, spec.inPerGroup].concat(kernel);
    const x = spec.transposed ? convOut : convIn;
    const y = spec.transposed ? convIn : convOut;
    spec.shapes = { x, dx: x, w, dw: w, y, dy: y, b: [y[1]], db: [y[1]] };
    spec.zeroPositions = range(nd).map((d) => zeroPositions(spec, d));
    return spec;
  }

  function sourceIndex(p, size, mode) {
    if (p >= 0 && p < size) return p;
    if (mode === "zeros") return null;
    if (mode === "replicate") return p < 0 ? 0 : size - 1;
    if (mode === "circular") return ((p % size) + size) % size;
    if (mode === "reflect") return p < 0 ? -p : 2 * (size - 1) - p;
    throw new ConfigError(`unknown padding_mode '${mode}'`);
  }

  /* The one index relation. */
  function inputPosition(spec, i, k) {
    return i.map((iv, d) => iv * spec.stride[d] + k[d] * spec.dilation[d] - spec.padLo[d]);
  }

  function source(spec, position) {
    const out = position.map((p, d) => sourceIndex(p, spec.inputSize[d], spec.mode));
    return out.includes(null) ? null : out;
  }

  function zeroPositions(spec, d) {
    const read = new Set();
    for (let i = 0; i < spec.outputSize[d]; i++) {
      for (let k = 0; k < spec.kernel[d]; k++) {
        const s = sourceIndex(i * spec.stride[d] + k * spec.dilation[d] - spec.padLo[d], spec.inputSize[d], spec.mode);
        if (s !== null) read.add(s);
      }
    }
    return range(spec.inputSize[d]).filter((p) => !read.has(p));
  }

  // -- the spec's three operations, term by term ---------------------------------------------------
  function forwardTerms(spec, index) {
    const [n, o, ...i] = index;
    const g = Math.floor(o / spec.outPerGroup);
    const terms = [];
    for (let c = 0; c < spec.inPerGroup; c++) {
      for (const k of product(spec.kernel.map(range))) {
        const src = source(spec, inputPosition(spec, i, k));
        terms.push([src === null ? null : [n, g * spec.inPerGroup + c].concat(src), [o, c].concat(k)]);
      }
    }
    return terms;
  }

  function tapsReaching(spec, d, h) {
    const size = spec.inputSize[d];
    const [lo, hi] = spec.padding[d];
    const positions = spec.mode === "zeros" ? [h] : range(lo + size + hi).map((p) => p - lo).filter((p) => sourceIndex(p, size, spec.mode) === h);
    const pairs = [];
    for (const p of positions) {
      for (let k = 0; k < spec.kernel[d]; k++) {
        const t = p + lo - k * spec.dilation[d];
        if (t % spec.stride[d] === 0 && t >= 0 && t / spec.stride[d] < spec.outputSize[d]) pairs.push([k, t / spec.stride[d]]);
      }
    }
    return pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  }

  function gradInputTerms(spec, index) {
    const [n, c, ...h] = index;
    const g = Math.floor(c / spec.inPerGroup);
    const cg = c - g * spec.inPerGroup;
    const perDimPairs = h.map((hv, d) => tapsReaching(spec, d, hv));
    const terms = [];
    for (let o = g * spec.outPerGroup; o < (g + 1) * spec.outPerGroup; o++) {
      for (const combo of product(perDimPairs)) {
        terms.push([[n, o].concat(combo.map((p) => p[1])), [o, cg].concat(combo.map((p) => p[0]))]);
      }
    }
    return terms;
  }

  function gradWeightTerms(spec, index) {
    const [o, c, ...k] = index;
    const channel = Math.floor(o / spec.outPerGroup) * spec.inPerGroup + c;
    const terms = [];
    for (let n = 0; n < spec.batch; n++) {
      for (const i of product(spec.outputSize.map(range))) {
        const src = source(spec, inputPosition(spec, i, k));
        terms.push([src === null ? null : [n, channel].concat(src), [n, o].concat(i)]);
      }
    }
    return terms;
  }

  /* Contributors in the user's terms (see Explanation.contributors), batch axis included. */
  function contributors(spec, quantity, index) {
    if (quantity === "grad_bias") {
      const shape = spec.shapes.dy;
      return product([range(shape[0])].concat(shape.slice(2).map(range))).map(([n, ...i]) => [n, index[0]].concat(i));
    }
    if (!spec.transposed) {
      if (quantity === "output") return forwardTerms(spec, index);
      if (quantity === "grad_input") return gradInputTerms(spec, index);
      if (quantity === "grad_weight") return gradWeightTerms(spec, index);
    } else {
      if (quantity === "output") return gradInputTerms(spec, index);
      if (quantity === "grad_input") return forwardTerms(spec, index).filter((t) => t[0] !== null);
      if (quantity === "grad_weight") return gradWeightTerms(spec, index).filter((t) => t[0] !== null).map((t) => [t[1], t[0]]);
    }
    throw new ConfigError(`quantity must be output, grad_input, grad_weight or grad_bias, got '${quantity}'`);
  }

  /* Zero-padding positions (padded coordinates) that the terms of an output / grad_weight element read. */
  function paddedReads(spec, quantity, index) {
    const out = [];
    if (spec.transposed || spec.mode !== "zeros") return out;
    const outside = (p) => p.some((v, d) => v < 0 || v >= spec.inputSize[d]);
    if (quantity === "output") {
      const [n, o, ...i] = index;
      const g = Math.floor(o / spec.outPerGroup);
      for (let c = 0; c < spec.inPerGroup; c++) {
        for (const k of product(spec.kernel.map(range))) {
          const p = inputPosition(spec, i, k);
          if (outside(p)) out.push([[n, g * spec.inPerGroup + c].concat(p), [o, c].concat(k)]);
        }
      }
    } else if (quantity === "grad_weight") {
      const [o, c, ...k] = index;
      const channel = Math.floor(o / spec.outPerGroup) * spec.inPerGroup + c;
      for (let n = 0; n < spec.batch; n++) {
        for (const i of product(spec.outputSize.map(range))) {
          const p = inputPosition(spec, i, k);
          if (outside(p)) out.push([[n, channel].concat(p), [n, o].concat(i)]);
        }
      }
    }
    return out;
  }

  return { ConfigError, MODES, makeSpec, sourceIndex, inputPosition, contributors, paddedReads, product, range };
})();

if (typeof module !== "undefined") module.exports = ConvGradRelation;
