// A form generated from an OGC API - Processes description: one labelled field per input,
// chosen from the input's JSON schema (string, date, number, integer, boolean, enum, arrays of
// those, nullable variants), with defaults, bounds and required marks; `values()` returns the
// `inputs` object of an execute request (only what the user set or what is required).

import { h, isRecord, str, uid } from "../dom";

export type Schema = Record<string, unknown>;

export interface ProcessInput {
  name: string;
  title: string;
  description: string;
  schema: Schema;
  required: boolean;
}

/** The inputs of a process description, in document order. */
export function processInputs(description: Record<string, unknown>): ProcessInput[] {
  const inputs = description.inputs;
  const entries: [string, Record<string, unknown>][] = [];
  if (Array.isArray(inputs)) {
    for (const input of inputs.filter(isRecord)) entries.push([str(input.id ?? input.name), input]);
  } else if (isRecord(inputs)) {
    for (const [name, input] of Object.entries(inputs)) if (isRecord(input)) entries.push([name, input]);
  }
  return entries.map(([name, input]) => {
    const schema = isRecord(input.schema) ? input.schema : {};
    const minOccurs = typeof input.minOccurs === "number" ? input.minOccurs : 1;
    return {
      name,
      // The service's title ("Maximum cloud cover") and unit (schema "x-unit": "%").
      title: typeof schema["x-unit"] === "string" && schema["x-unit"] ? `${str(input.title, name)} (${schema["x-unit"]})` : str(input.title, name),
      description: str(input.description ?? schema.description),
      schema,
      required: minOccurs > 0 && !("default" in schema),
    };
  });
}

/** The non-null branch of `anyOf: [X, {type: null}]`, and whether null is allowed. */
export function unwrapNullable(schema: Schema): { schema: Schema; nullable: boolean } {
  const variants = (schema.anyOf ?? schema.oneOf) as unknown;
  if (Array.isArray(variants)) {
    const typed = variants.filter(isRecord);
    const nonNull = typed.filter((v) => v.type !== "null");
    if (nonNull.length === 1) {
      const merged: Schema = { ...schema, ...nonNull[0] };
      delete merged.anyOf;
      delete merged.oneOf;
      return { schema: merged, nullable: nonNull.length < typed.length };
    }
  }
  const type = schema.type;
  if (Array.isArray(type) && type.includes("null")) {
    const rest = type.filter((t) => t !== "null");
    return { schema: { ...schema, type: rest.length === 1 ? rest[0] : rest }, nullable: true };
  }
  return { schema, nullable: schema.nullable === true };
}

interface FieldControl {
  element: HTMLElement;
  /** The value to send, or undefined to leave the input out (the process default applies). */
  read(): unknown;
  focusTarget: HTMLElement;
}

function boundsHint(schema: Schema): string {
  const parts: string[] = [];
  // JSON Schema (exclusiveMinimum: 5) and OpenAPI 3.0 (minimum: 5, exclusiveMinimum: true).
  if (typeof schema.minimum === "number") parts.push(`${schema.exclusiveMinimum === true ? ">" : "≥"} ${schema.minimum}`);
  if (typeof schema.exclusiveMinimum === "number") parts.push(`> ${schema.exclusiveMinimum}`);
  if (typeof schema.maximum === "number") parts.push(`${schema.exclusiveMaximum === true ? "<" : "≤"} ${schema.maximum}`);
  if (typeof schema.exclusiveMaximum === "number") parts.push(`< ${schema.exclusiveMaximum}`);
  return parts.join(", ");
}

function defaultText(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map((v) => str(v)).join(", ");
  return str(value);
}

function parseScalar(text: string, type: unknown): unknown {
  if (type === "integer") {
    const n = Number(text);
    return Number.isInteger(n) ? n : text;
  }
  if (type === "number") {
    const n = Number(text);
    return Number.isFinite(n) ? n : text;
  }
  return text;
}

function control(input: ProcessInput, id: string, hintId: string, fixed?: string): FieldControl {
  const { schema, nullable } = unwrapNullable(input.schema);
  const type = schema.type;
  const defaultValue = input.schema.default ?? schema.default;
  const enumValues = Array.isArray(schema.enum) ? schema.enum : null;
  const describedBy = hintId;

  if (fixed !== undefined) {
    const el = h("input", { id, name: input.name, value: fixed, readonly: true, "aria-describedby": describedBy });
    return { element: el, focusTarget: el, read: () => parseScalar(fixed, type) };
  }

  if (type === "boolean") {
    const el = h("input", {
      id,
      name: input.name,
      type: "checkbox",
      checked: defaultValue === true,
      "aria-describedby": describedBy,
    });
    const initial = el.checked;
    return {
      element: el,
      focusTarget: el,
      read: () => (el.checked === initial && !input.required ? undefined : el.checked),
    };
  }

  if (enumValues) {
    const options: HTMLOptionElement[] = [];
    if (!input.required || defaultValue === undefined) {
      options.push(
        h("option", { value: "" }, defaultValue !== undefined && defaultValue !== null ? `default (${str(defaultValue)})` : "—"),
      );
    }
    for (const value of enumValues) {
      options.push(h("option", { value: str(value), selected: value === defaultValue && input.required }, str(value)));
    }
    const el = h("select", { id, name: input.name, required: input.required, "aria-describedby": describedBy }, options);
    return { element: el, focusTarget: el, read: () => (el.value === "" ? undefined : parseScalar(el.value, type)) };
  }

  if (type === "array") {
    const items = isRecord(schema.items) ? unwrapNullable(schema.items).schema : {};
    const itemEnum = Array.isArray(items.enum) ? items.enum : null;
    const defaults = Array.isArray(defaultValue) ? defaultValue.map((v) => str(v)) : null;
    if (itemEnum) {
      const boxes = itemEnum.map((value) =>
        h("input", {
          type: "checkbox",
          name: input.name,
          value: str(value),
          checked: defaults ? defaults.includes(str(value)) : false,
        }),
      );
      const initial = boxes.map((b) => b.checked).join();
      const group = h(
        "fieldset",
        { id, class: "checks", "aria-describedby": describedBy },
        h("legend", { class: "sr-only" }, input.title),
        boxes.map((box, i) => h("label", { class: "check" }, box, str(itemEnum[i]))),
      );
      return {
        element: group,
        focusTarget: boxes[0] ?? group,
        read: () => {
          if (boxes.map((b) => b.checked).join() === initial && !input.required) return undefined;
          return boxes.filter((b) => b.checked).map((b) => parseScalar(b.value, items.type));
        },
      };
    }
    const el = h("input", {
      id,
      name: input.name,
      placeholder: defaults && defaults.length ? defaults.join(", ") : "comma-separated values",
      required: input.required,
      "aria-describedby": describedBy,
    });
    return {
      element: el,
      focusTarget: el,
      read: () => {
        const text = el.value.trim();
        if (!text) return undefined;
        return text
          .split(",")
          .map((part) => part.trim())
          .filter(Boolean)
          .map((part) => parseScalar(part, items.type));
      },
    };
  }

  if (type === "object") {
    const el = h("textarea", {
      id,
      name: input.name,
      rows: 3,
      placeholder: defaultValue !== undefined ? JSON.stringify(defaultValue) : "{ }",
      "aria-describedby": describedBy,
    });
    return {
      element: el,
      focusTarget: el,
      read: () => {
        const text = el.value.trim();
        if (!text) return undefined;
        try {
          return JSON.parse(text) as unknown;
        } catch {
          throw new Error(`${input.title}: not valid JSON`);
        }
      },
    };
  }

  const attrs: Record<string, unknown> = {
    id,
    name: input.name,
    required: input.required,
    "aria-describedby": describedBy,
  };
  if (type === "integer" || type === "number") {
    attrs.type = "number";
    attrs.step = type === "integer" ? "1" : "any";
    if (typeof schema.minimum === "number") attrs.min = schema.minimum;
    if (typeof schema.maximum === "number") attrs.max = schema.maximum;
  } else if (schema.format === "date") {
    attrs.type = "date";
  } else if (schema.format === "date-time") {
    attrs.type = "datetime-local";
  }
  const placeholder = defaultText(defaultValue);
  if (placeholder && attrs.type !== "date") attrs.placeholder = placeholder;
  if (input.required && placeholder) attrs.value = placeholder;
  const el = h("input", attrs);
  void nullable;
  return {
    element: el,
    focusTarget: el,
    read: () => {
      const text = el.value.trim();
      if (!text) return undefined;
      return parseScalar(text, type);
    },
  };
}

export interface SchemaForm {
  element: HTMLElement;
  /** The inputs object for the execute request; throws on a malformed JSON field. */
  values(): Record<string, unknown>;
}

/** Fields for `inputs`; `fixed` pins values (the chosen site and season) as read-only fields.
 * Optional inputs go into a collapsed "Parameters" section so the form stays short. */
export function schemaForm(inputs: ProcessInput[], fixed: Record<string, string> = {}): SchemaForm {
  const controls: [ProcessInput, FieldControl][] = [];
  const requiredFields: HTMLElement[] = [];
  const optionalFields: HTMLElement[] = [];
  for (const input of inputs) {
    const id = uid(`in-${input.name}`);
    const hintId = `${id}-hint`;
    const { schema } = unwrapNullable(input.schema);
    const ctl = control(input, id, hintId, fixed[input.name]);
    controls.push([input, ctl]);
    const hint = [input.description, boundsHint(schema)].filter(Boolean).join(" ");
    const isBool = schema.type === "boolean";
    const labelEl =
      ctl.element instanceof HTMLFieldSetElement
        ? h("span", { class: "label", id: `${id}-label` }, input.title)
        : h("label", { for: id }, input.title, input.required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null);
    if (ctl.element instanceof HTMLFieldSetElement) ctl.element.setAttribute("aria-labelledby", `${id}-label`);
    const wrapper = h(
      "div",
      { class: `field${isBool ? " field-check" : ""}`, dataset: { input: input.name } },
      isBool ? [ctl.element, labelEl] : [labelEl, ctl.element],
      h("small", { id: hintId, class: "hint" }, hint || `(${input.name})`),
    );
    (input.required || fixed[input.name] !== undefined ? requiredFields : optionalFields).push(wrapper);
  }
  const element = h(
    "div",
    { class: "schema-form" },
    requiredFields,
    optionalFields.length
      ? h(
          "details",
          { class: "parameters" },
          h("summary", null, `Parameters (${optionalFields.length}, defaults apply when left empty)`),
          h("div", { class: "param-grid" }, optionalFields),
        )
      : null,
  );
  return {
    element,
    values() {
      const result: Record<string, unknown> = {};
      for (const [input, ctl] of controls) {
        const value = ctl.read();
        if (value !== undefined) result[input.name] = value;
      }
      return result;
    },
  };
}
