import { useMemo } from "react";
import { timezones } from "../lib/format";
import { SelectField } from "./ui";

export function TimezoneSelect({ value, onChange, error, label = "Timezone" }: { value: string; onChange: (tz: string) => void; error?: string; label?: string }) {
  const zones = useMemo(() => {
    const z = timezones();
    return z.includes(value) || !value ? z : [value, ...z];
  }, [value]);
  return (
    <SelectField label={label} name="timezone" value={value} onChange={(e) => onChange(e.target.value)} error={error}>
      {zones.map((z) => (
        <option key={z} value={z}>
          {z.replace(/_/g, " ")}
        </option>
      ))}
    </SelectField>
  );
}
