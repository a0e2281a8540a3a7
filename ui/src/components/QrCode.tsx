// A QR code drawn as SVG from the `qr` package, which is loaded only when a
// code is shown (two-factor enrolment), never with the first screen.

import { useEffect, useState } from "react";
import { Spinner } from "./ui";

/** One SVG path of unit squares for the dark modules (the matrix includes the quiet zone). */
export function qrPath(matrix: boolean[][]): string {
  let d = "";
  matrix.forEach((row, y) => {
    let x = 0;
    while (x < row.length) {
      if (!row[x]) {
        x++;
        continue;
      }
      let run = 1;
      while (x + run < row.length && row[x + run]) run++;
      d += `M${x} ${y}h${run}v1h-${run}z`;
      x += run;
    }
  });
  return d;
}

export function QrCode({ value, label, size = 240 }: { value: string; label: string; size?: number }) {
  const [matrix, setMatrix] = useState<boolean[][] | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    setMatrix(null);
    import("qr")
      .then(({ default: encodeQR }) => {
        if (live) setMatrix(encodeQR(value, "raw", { ecc: "medium", border: 4 }));
      })
      .catch(() => live && setFailed(true));
    return () => {
      live = false;
    };
  }, [value]);
  if (failed) return <p className="notice notice-warn">The QR code could not be drawn. Type the setup key below into your app instead.</p>;
  if (!matrix) {
    return (
      <div className="qr qr-pending" style={{ width: size, height: size }}>
        <Spinner label="Drawing the QR code" />
      </div>
    );
  }
  const n = matrix.length;
  return (
    <svg className="qr" role="img" aria-label={label} viewBox={`0 0 ${n} ${n}`} width={size} height={size} shapeRendering="crispEdges" data-testid="qr-code">
      <rect width={n} height={n} fill="#fff" />
      <path d={qrPath(matrix)} fill="#000" />
    </svg>
  );
}
