import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryRouter } from "react-router";
import { ApiError } from "../api/client";
import { describeError } from "./toast";
import { Field, FormError } from "./ui";

afterEach(cleanup);

describe("form errors", () => {
  it("ties a field's error to its input", () => {
    render(<Field label="Email" name="email" error="not an email address" />);
    const input = screen.getByLabelText("Email");
    expect(input.getAttribute("aria-invalid")).toBe("true");
    const described = input.getAttribute("aria-describedby")!;
    expect(document.getElementById(described)?.textContent).toBe("not an email address");
  });

  it("shows a plan limit as an upgrade hint", () => {
    const err = new ApiError({ status: 403, code: "plan_limit_reached", detail: "x", details: { limit: "projects", plan: "Free", max: 5 } });
    render(
      <MemoryRouter>
        <FormError error={err} />
      </MemoryRouter>,
    );
    expect(screen.getByRole("alert").textContent).toContain("The Free plan allows 5 projects");
    expect(screen.getByRole("link", { name: "Upgrade the plan" }).getAttribute("href")).toBe("/settings#plan");
  });

  it("does not repeat a field error at the top of the form, but shows a form-level one", () => {
    const fieldErr = new ApiError({ status: 422, code: "invalid_email", field: "email", detail: "bad" });
    const { container } = render(<FormError error={fieldErr} fields={["email"]} />);
    expect(container.textContent).toBe("");
    render(<FormError error={new ApiError({ status: 401, code: "invalid_credentials", detail: "the workspace, email or password is not correct" })} fields={["email"]} />);
    expect(screen.getByRole("alert").textContent).toContain("not correct");
  });

  it("words a 412 as a change made elsewhere", () => {
    expect(describeError(new ApiError({ status: 412, code: "precondition_failed" })).title).toBe("Changed by someone else");
  });
});
