// Parses generated TypeScript with the TypeScript compiler's parser and returns, per input line,
// the syntax errors and the runtime values of the `const` declarations initialised with JSON
// literals (or JSON.parse("...")), so that the tests can compare them with what was embedded.
// Protocol: one JSON object per line on stdin ({"code": "..."}), one JSON answer per line on stdout.
import { createInterface } from "node:readline";
import ts from "typescript";

function valueOf(node) {
  if (ts.isCallExpression(node) && node.expression.getText() === "JSON.parse") {
    const [arg] = node.arguments;
    if (!arg || !ts.isStringLiteral(arg)) throw new Error("JSON.parse without a string literal");
    return JSON.parse(arg.text);
  }
  if (ts.isObjectLiteralExpression(node) || ts.isArrayLiteralExpression(node) || ts.isStringLiteral(node)
      || node.kind === ts.SyntaxKind.NullKeyword || ts.isNumericLiteral(node)
      || ts.isPrefixUnaryExpression(node) || node.kind === ts.SyntaxKind.TrueKeyword
      || node.kind === ts.SyntaxKind.FalseKeyword) {
    return JSON.parse(node.getText());
  }
  throw new Error(`not a data literal: ${ts.SyntaxKind[node.kind]}`);
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const { code } = JSON.parse(line);
  const answer = { diagnostics: [], values: {}, calls: [] };
  try {
    const source = ts.createSourceFile("stub.test.ts", code, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    answer.diagnostics = source.parseDiagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    for (const statement of source.statements) {
      if (ts.isVariableStatement(statement)) {
        for (const decl of statement.declarationList.declarations) {
          answer.values[decl.name.getText()] = valueOf(decl.initializer);
        }
      } else if (ts.isExpressionStatement(statement) && ts.isCallExpression(statement.expression)) {
        answer.calls.push(statement.expression.expression.getText());
      }
    }
  } catch (error) {
    answer.diagnostics.push(String(error));
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
