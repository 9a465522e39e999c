// The SQL console's editor: CodeMirror 6 with SQL highlighting (classes styled by
// app.css, so the dark theme and contrast live in one place), completion of keywords and
// of the connection's table and column names, and Ctrl/Cmd+Enter to run.
// Built into ../assets/editor.js by `npm run build`; the binary embeds that file.
import { EditorView, keymap, lineNumbers, drawSelection, highlightActiveLine, placeholder } from '@codemirror/view';
import { EditorState, Compartment } from '@codemirror/state';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { sql, PostgreSQL, MySQL, SQLite } from '@codemirror/lang-sql';
import { syntaxHighlighting, bracketMatching, indentOnInput } from '@codemirror/language';
import { autocompletion, completionKeymap } from '@codemirror/autocomplete';
import { tagHighlighter, tags } from '@lezer/highlight';

const highlighter = tagHighlighter([
  { tag: tags.keyword, class: 'tok-keyword' },
  { tag: [tags.string, tags.special(tags.string)], class: 'tok-string' },
  { tag: [tags.number, tags.bool, tags.null], class: 'tok-number' },
  { tag: [tags.lineComment, tags.blockComment], class: 'tok-comment' },
  { tag: [tags.operator, tags.punctuation], class: 'tok-operator' },
  { tag: [tags.typeName, tags.standard(tags.name)], class: 'tok-type' },
  { tag: tags.special(tags.name), class: 'tok-special' },
]);

// Non-breaking spaces (from a web page, or what a browser puts into a contenteditable for
// a trailing space) are spaces in SQL: the parser would not read them.
const plainSpaces = EditorState.transactionFilter.of(tr => {
  if (!tr.docChanged) return tr;
  let nbsp = false;
  tr.changes.iterChanges((_fa, _ta, _fb, _tb, text) => { if (text.toString().includes('\u00a0')) nbsp = true; });
  if (!nbsp) return tr;
  const changes = [];
  tr.changes.iterChanges((fromA, toA, _fb, _tb, text) => {
    changes.push({ from: fromA, to: toA, insert: text.toString().replace(/\u00a0/g, ' ') });
  });
  return { changes, selection: tr.selection, effects: tr.effects, scrollIntoView: tr.scrollIntoView };
});

const DIALECTS = { postgres: PostgreSQL, mysql: MySQL, sqlite: SQLite };

// Replaces `textarea` with an editor that keeps it up to date (so the form still posts
// it); returns { view, setSchema, getValue, setValue, focus }.
export function create(textarea, options) {
  const language = new Compartment();
  const lang = schema => sql({
    dialect: DIALECTS[options.dialect] || PostgreSQL,
    schema: schema || {},
    upperCaseKeywords: true,
  });
  const run = () => { options.onRun && options.onRun(); return true; };
  const view = new EditorView({
    parent: textarea.parentNode,
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        plainSpaces, lineNumbers(), history(), drawSelection(), highlightActiveLine(), indentOnInput(),
        bracketMatching(), syntaxHighlighting(highlighter),
        autocompletion({ activateOnTyping: true }),
        placeholder(textarea.placeholder || ''),
        keymap.of([
          { key: 'Mod-Enter', run, preventDefault: true },
          ...completionKeymap, ...defaultKeymap, ...historyKeymap, indentWithTab,
        ]),
        language.of(lang(null)),
        EditorView.lineWrapping,
        EditorView.cspNonce.of(options.nonce || ''),
        EditorView.contentAttributes.of({ 'aria-label': options.label || 'SQL query', spellcheck: 'false' }),
        EditorView.updateListener.of(u => {
          if (!u.docChanged) return;
          textarea.value = u.state.doc.toString();
          options.onChange && options.onChange(textarea.value);
        }),
      ],
    }),
  });
  textarea.parentNode.insertBefore(view.dom, textarea);
  textarea.hidden = true;
  return {
    view,
    setSchema: schema => view.dispatch({ effects: language.reconfigure(lang(schema)) }),
    getValue: () => view.state.doc.toString(),
    setValue: text => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    focus: () => view.focus(),
  };
}
