#!/usr/bin/env node
// Driver for the pinned Motoko compiler (npm package `motoko`, moc compiled to JavaScript).
//
// Reads ONE JSON request on stdin, writes ONE JSON response on stdout, then exits. Used by
// toolchain/moc.py; one node process per request, because moc keeps internal state between
// compilations in the same process and a second compile there is not byte-identical to the first.
//
// Requests:
//   {"op": "version"}
//   {"op": "compile", "files": {"<path>": "<text>", ...}, "main": "<path>", "mode": "ic",
//    "flags": ["--flag", ...]}
//   {"op": "stable_compatible", "old": "<.most text>", "new": "<.most text>"}
// Responses always carry {"ok": true, "package_version", "compiler_version"} plus:
//   compile:            {"diagnostics": [...], "wasm": "<base64>" | null, "candid", "stable"}
//   stable_compatible:  {"diagnostics": [...]}
// or, on an internal failure, {"ok": false, "error": "<message>"}.
'use strict';

const fs = require('fs');
const path = require('path');

// Anything moc (or this script) logs must not corrupt the JSON on stdout.
const stdoutFd = 1;
console.log = (...args) => console.error(...args);
console.info = console.log;

function respond(obj) {
    fs.writeSync(stdoutFd, JSON.stringify(obj));
}

function fail(message) {
    respond({ ok: false, error: String(message) });
    process.exitCode = 1;
}

function describe(err) {
    if (err instanceof Error) return err.stack || err.message;
    // moc (js_of_ocaml) throws OCaml exceptions, e.g. [0, [248, 'Stdlib.Arg.Bad', 7], 'mocjs: ...'].
    if (Array.isArray(err) && Array.isArray(err[1]) && typeof err[1][1] === 'string' && typeof err[2] === 'string') {
        return `${err[1][1]}: ${err[2]}`;
    }
    try {
        return JSON.stringify(err);
    } catch (_) {
        return String(err);
    }
}

function loadCompiler() {
    const root = process.env.GRAPHCOPY_MOTOKO_DIR || path.join(__dirname, '..', 'node_modules', 'motoko');
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    const { Motoko } = require(path.join(root, 'versions', 'latest', 'moc.min.js'));
    return { Motoko, packageVersion: pkg.version };
}

function normalizeDiagnostics(diags) {
    return (diags || []).map((d) => ({
        source: d.source || '',
        severity: d.severity, // 1 = error, 2 = warning, 3 = information, 4 = hint (LSP numbering)
        code: d.code || '',
        category: d.category || '',
        message: d.message || '',
        range: d.range || null,
    }));
}

function run(request) {
    const { Motoko, packageVersion } = loadCompiler();
    const base = { ok: true, package_version: packageVersion, compiler_version: String(Motoko.version || '') };
    switch (request.op) {
        case 'version':
            return base;
        case 'compile': {
            const files = request.files || {};
            for (const [p, text] of Object.entries(files)) Motoko.saveFile(p, text);
            Motoko.setExtraFlags(request.flags || []);
            const result = Motoko.compileWasm(request.mode || 'ic', request.main);
            const code = result.code;
            return Object.assign(base, {
                diagnostics: normalizeDiagnostics(result.diagnostics),
                wasm: code ? Buffer.from(code.wasm).toString('base64') : null,
                candid: code ? code.candid : null,
                stable: code ? code.stable : null,
            });
        }
        case 'stable_compatible': {
            // moc's stableCompatible takes file paths, not texts.
            Motoko.saveFile('old.most', request.old);
            Motoko.saveFile('new.most', request.new);
            const result = Motoko.stableCompatible('old.most', 'new.most');
            return Object.assign(base, { diagnostics: normalizeDiagnostics(result.diagnostics) });
        }
        default:
            throw new Error(`unknown op: ${JSON.stringify(request.op)}`);
    }
}

function main() {
    const input = fs.readFileSync(0, 'utf8');
    let request;
    try {
        request = JSON.parse(input);
    } catch (err) {
        return fail(`request is not JSON: ${describe(err)}`);
    }
    let response;
    try {
        response = run(request);
    } catch (err) {
        return fail(describe(err));
    }
    respond(response);
}

main();
