import type { WorkHours } from "../api/types";
import { WEEKDAYS } from "../lib/format";

export function WorkHoursFields({ value, onChange, error, idPrefix }: { value: WorkHours; onChange: (w: WorkHours) => void; error?: string; idPrefix: string }) {
  const days = value.days ?? [];
  return (
    <fieldset>
      <legend>Work hours</legend>
      <div className="form-row">
        <div className="field">
          <label htmlFor={`${idPrefix}-start`}>Start</label>
          <input id={`${idPrefix}-start`} type="time" value={value.start} onChange={(e) => onChange({ ...value, start: e.target.value })} aria-invalid={error ? true : undefined} />
        </div>
        <div className="field">
          <label htmlFor={`${idPrefix}-end`}>End</label>
          <input id={`${idPrefix}-end`} type="time" value={value.end} onChange={(e) => onChange({ ...value, end: e.target.value })} aria-invalid={error ? true : undefined} />
        </div>
      </div>
      <div className="checkbox-row" role="group" aria-label="Working days">
        {WEEKDAYS.map((d, i) => (
          <label key={d}>
            <input
              type="checkbox"
              checked={days.includes(i + 1)}
              onChange={(e) => onChange({ ...value, days: e.target.checked ? [...days, i + 1].sort() : days.filter((x) => x !== i + 1) })}
            />
            {d}
          </label>
        ))}
      </div>
      {error && <p className="field-error">{error}</p>}
    </fieldset>
  );
}
