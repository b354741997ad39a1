// The JS contract check (tests/node/contract.test.mjs): reads src/binding_types.d.ts with the TypeScript compiler
// into the same description the Rust side writes (src/contract/mod.rs), and lists every difference between them.
//
// A description maps each type name to one of
//   { enum: [names] }
//   { object: { fields } }
//   { union: { tag, variants: { <tag value>: { fields } } } }
// where fields map a JSON name to { kind, optional, nullable } and a kind is "string" | "number" | "boolean" |
// "unknown" | { array: kind } | { record: kind } | { ref: name } (and, in the d.ts, { enum } or { object } inline).
// The Rust side adds to each type its `direction` ("read": JS to engine, "written": engine to JS, "both") and
// whether the d.ts writes it `inline` where it is used instead of naming it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const repo = fileURLToPath(new URL('../..', import.meta.url));
export const DTS_PATH = path.join(repo, 'src', 'binding_types.d.ts');

/**
 * The Rust side's description: runs the native unit test that builds it (`cargo test --lib`, the dev profile
 * scripts/test.sh builds first, so this is quick there; a first build takes minutes).
 */
export function rustContract() {
  const dir = mkdtempSync(path.join(tmpdir(), 'vpp-contract-'));
  const out = path.join(dir, 'contract.json');
  try {
    execFileSync('cargo', ['test', '--locked', '--quiet', '--lib', '--', '--exact', 'contract::tests::description'], {
      cwd: repo,
      env: { ...process.env, VPP_CONTRACT_OUT: out },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
    return JSON.parse(readFileSync(out, 'utf8')).types;
  } catch (error) {
    throw new Error(`the Rust description could not be built (cargo test --lib contract::tests::description):\n${error.stdout ?? ''}${error.stderr ?? error.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ----------------------------------------------------------------------------------------- the d.ts side

const show = (kind) => (typeof kind === 'string' ? kind : JSON.stringify(kind));

/** The description of a d.ts text: { types, members } (members: interfaces that are variants of a union). */
export function describeDts(text, fileName = 'binding_types.d.ts') {
  const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const where = (node) => {
    const { line } = file.getLineAndCharacterOfPosition(node.getStart(file));
    return `${fileName}:${line + 1}`;
  };
  const unsupported = (node) => {
    throw new Error(`${where(node)}: the contract check does not know this type: ${node.getText(file)}`);
  };

  /** A type node as { kind, nullable }. */
  function kindOf(node) {
    switch (node.kind) {
      case ts.SyntaxKind.StringKeyword:
        return { kind: 'string', nullable: false };
      case ts.SyntaxKind.NumberKeyword:
        return { kind: 'number', nullable: false };
      case ts.SyntaxKind.BooleanKeyword:
        return { kind: 'boolean', nullable: false };
      case ts.SyntaxKind.UnknownKeyword:
        return { kind: 'unknown', nullable: true };
      case ts.SyntaxKind.ParenthesizedType:
        return kindOf(node.type);
      case ts.SyntaxKind.ArrayType:
        return { kind: { array: plain(node.elementType) }, nullable: false };
      case ts.SyntaxKind.TypeLiteral:
        return { kind: { object: { fields: fieldsOf(node.members) } }, nullable: false };
      case ts.SyntaxKind.LiteralType:
        if (node.literal.kind === ts.SyntaxKind.NullKeyword) return { kind: null, nullable: true };
        if (ts.isStringLiteral(node.literal)) return { kind: { enum: [node.literal.text] }, nullable: false };
        if (ts.isNumericLiteral(node.literal)) return { kind: 'number', nullable: false };
        return unsupported(node);
      case ts.SyntaxKind.TypeReference: {
        const name = node.typeName.getText(file);
        const args = node.typeArguments ?? [];
        if (name === 'Record' && args.length === 2 && args[0].kind === ts.SyntaxKind.StringKeyword) {
          return { kind: { record: plain(args[1]) }, nullable: false };
        }
        if (args.length > 0) return unsupported(node);
        return { kind: { ref: name }, nullable: false };
      }
      case ts.SyntaxKind.UnionType: {
        const members = node.types.map(kindOf);
        const nullable = members.some((m) => m.nullable);
        const kinds = members.map((m) => m.kind).filter((k) => k !== null);
        if (kinds.length === 1) return { kind: kinds[0], nullable };
        if (kinds.every((k) => k.enum)) return { kind: { enum: kinds.flatMap((k) => k.enum) }, nullable };
        if (kinds.every((k) => k === 'number')) return { kind: 'number', nullable }; // e.g. 30 | 15 | 7 | 1
        return unsupported(node);
      }
      default:
        return unsupported(node);
    }
  }

  function plain(node) {
    const { kind, nullable } = kindOf(node);
    if (nullable && kind !== 'unknown') unsupported(node);
    return kind;
  }

  function fieldsOf(members) {
    const fields = {};
    for (const member of members) {
      if (!ts.isPropertySignature(member) || !member.type) unsupported(member);
      const name = ts.isIdentifier(member.name) || ts.isStringLiteral(member.name) ? member.name.text : unsupported(member);
      const { kind, nullable } = kindOf(member.type);
      fields[name] = { kind, optional: member.questionToken !== undefined, nullable };
    }
    return fields;
  }

  const interfaces = new Map();
  const aliases = new Map();
  for (const statement of file.statements) {
    if (ts.isInterfaceDeclaration(statement)) {
      if (statement.heritageClauses || statement.typeParameters) unsupported(statement);
      interfaces.set(statement.name.text, statement);
    } else if (ts.isTypeAliasDeclaration(statement)) {
      if (statement.typeParameters) unsupported(statement);
      aliases.set(statement.name.text, statement);
    } else {
      unsupported(statement);
    }
  }

  const types = {};
  const members = new Set();
  for (const [name, node] of interfaces) types[name] = { object: { fields: fieldsOf(node.members) } };
  for (const [name, node] of aliases) {
    const type = node.type;
    if (!ts.isUnionTypeNode(type)) {
      types[name] = kindToType(kindOf(type), type);
      continue;
    }
    // A union of string literals is an enum; a union of objects sharing a string-literal field is a tagged union.
    const variants = type.types.map((member) => {
      if (ts.isTypeReferenceNode(member) && interfaces.has(member.typeName.getText(file))) {
        const memberName = member.typeName.getText(file);
        members.add(memberName);
        return { fields: types[memberName].object.fields, node: member };
      }
      const { kind } = kindOf(member);
      return kind?.object ? { fields: kind.object.fields, node: member } : { kind, node: member };
    });
    if (variants.every((v) => v.kind?.enum)) {
      types[name] = { enum: variants.flatMap((v) => v.kind.enum) };
      continue;
    }
    if (!variants.every((v) => v.fields)) unsupported(type);
    const tags = Object.keys(variants[0].fields).filter((field) =>
      variants.every((v) => v.fields[field]?.kind?.enum?.length === 1 && !v.fields[field].optional));
    if (tags.length !== 1) throw new Error(`${where(type)}: ${name} is a union without one tag field (found ${tags.join(', ') || 'none'})`);
    const [tag] = tags;
    const union = { tag, variants: {} };
    for (const { fields, node: member } of variants) {
      const value = fields[tag].kind.enum[0];
      if (union.variants[value]) throw new Error(`${where(member)}: ${name} has two variants "${value}"`);
      const { [tag]: _, ...rest } = fields;
      union.variants[value] = { fields: rest };
    }
    types[name] = { union };
  }
  return { types, members };
}

function kindToType({ kind }, node) {
  if (kind?.enum) return { enum: kind.enum };
  if (kind?.object) return { object: kind.object };
  throw new Error(`the contract check does not know the type alias ${node.getText()}`);
}

// ----------------------------------------------------------------------------------------- the comparison

/**
 * Every difference between the Rust description and the d.ts one, as sentences (empty when they agree).
 *
 * Rules: the same types, enum names, union variants and field names on both sides. Fields the engine writes:
 * optional (`?`) and `| null` exactly as Rust writes them. Fields the engine reads: `?` only where the engine
 * accepts the field absent and `| null` only where it accepts null (the d.ts may ask more than the engine needs:
 * require a field the engine defaults, leave null out). Kinds: the same; the d.ts may narrow a string or a number
 * to literals ("queued" | "pending", 30 | 15), and writes some types inline where Rust names them.
 */
export function compareContracts(rust, dts) {
  const problems = [];
  const rustName = (name) => rust[name].rust.join(', ');
  for (const [name, type] of Object.entries(rust)) {
    if (type.inline) {
      if (dts.types[name]) problems.push(`${name}: binding_types.d.ts names it, but it is described as written inline`);
      continue;
    }
    if (!dts.types[name]) {
      problems.push(`${name}: a Rust type (${rustName(name)}), missing from binding_types.d.ts`);
      continue;
    }
    compareType(name, type, dts.types[name]);
  }
  for (const name of Object.keys(dts.types)) {
    if (!rust[name] && !dts.members.has(name)) problems.push(`${name}: in binding_types.d.ts, but no Rust type of the contract`);
  }
  return problems;

  function compareType(name, r, t) {
    if (r.enum) {
      if (!t.enum) return problems.push(`${name}: an enum of names in Rust, not in binding_types.d.ts`);
      return compareNames(name, r.enum, t.enum);
    }
    if (r.object) {
      if (!t.object) return problems.push(`${name}: an object in Rust, not in binding_types.d.ts`);
      return compareFields(name, r.object.fields, t.object.fields, r.direction);
    }
    if (!t.union) return problems.push(`${name}: a union tagged by "${r.union.tag}" in Rust, not in binding_types.d.ts`);
    if (t.union.tag !== r.union.tag) {
      return problems.push(`${name}: tagged by "${r.union.tag}" in Rust, by "${t.union.tag}" in binding_types.d.ts`);
    }
    for (const variant of Object.keys(r.union.variants)) {
      if (!t.union.variants[variant]) problems.push(`${name}: variant "${variant}" in Rust, missing from binding_types.d.ts`);
    }
    for (const variant of Object.keys(t.union.variants)) {
      if (!r.union.variants[variant]) problems.push(`${name}: variant "${variant}" in binding_types.d.ts, not in Rust`);
      else compareFields(`${name}.${variant}`, r.union.variants[variant].fields, t.union.variants[variant].fields, r.direction);
    }
  }

  function compareNames(where, rustNames, dtsNames) {
    for (const n of rustNames) if (!dtsNames.includes(n)) problems.push(`${where}: "${n}" in Rust, missing from binding_types.d.ts`);
    for (const n of dtsNames) if (!rustNames.includes(n)) problems.push(`${where}: "${n}" in binding_types.d.ts, not in Rust`);
  }

  function compareFields(where, rf, tf, direction) {
    for (const name of Object.keys(rf)) {
      if (!tf[name]) problems.push(`${where}.${name}: a field in Rust, missing from binding_types.d.ts`);
    }
    for (const [name, t] of Object.entries(tf)) {
      const r = rf[name];
      const at = `${where}.${name}`;
      if (!r) {
        problems.push(`${at}: a field in binding_types.d.ts, not in Rust`);
        continue;
      }
      if (direction === 'read') {
        if (t.optional && !r.optional) problems.push(`${at}: optional in binding_types.d.ts, but the engine requires it`);
        if (t.nullable && !r.nullable && t.kind !== 'unknown') problems.push(`${at}: may be null in binding_types.d.ts, but the engine refuses null`);
      } else {
        if (t.optional !== r.optional) {
          problems.push(`${at}: ${r.optional ? 'sometimes left out' : 'always written'} by the engine, ${t.optional ? 'optional' : 'required'} in binding_types.d.ts`);
        }
        if (t.nullable !== r.nullable && t.kind !== 'unknown') {
          problems.push(`${at}: ${r.nullable ? 'may be null' : 'never null'} in Rust, ${t.nullable ? '`| null`' : 'no `| null`'} in binding_types.d.ts`);
        }
      }
      compareKind(at, r.kind, t.kind);
    }
  }

  function compareKind(at, rk, tk) {
    const differ = () => problems.push(`${at}: ${show(rk)} in Rust, ${show(tk)} in binding_types.d.ts`);
    if (rk === 'unknown' || tk === 'unknown') return rk === tk || differ();
    if (rk === 'string') return tk === 'string' || tk?.enum || differ();
    if (typeof rk === 'string') return rk === tk || differ();
    if (rk.array) return tk?.array ? compareKind(`${at}[]`, rk.array, tk.array) : differ();
    if (rk.record) return tk?.record ? compareKind(`${at}{}`, rk.record, tk.record) : differ();
    const target = rust[rk.ref];
    if (tk?.ref) return tk.ref === rk.ref || differ();
    if (!target?.inline) return differ();
    if (target.enum && tk?.enum) return compareNames(`${at} (${rk.ref})`, target.enum, tk.enum);
    if (target.object && tk?.object) return compareFields(`${at}`, target.object.fields, tk.object.fields, target.direction);
    return differ();
  }
}
