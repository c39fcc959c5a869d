namespace SiaExporter;

/// <summary>
/// Something the operator must fix (a wrong setting, missing privilege or package, an old
/// kernel). The daemon prints one line, "error: {What} — {WhatToDo}", and exits non-zero.
/// </summary>
public sealed class OperatorException : Exception
{
    public OperatorException(string what, string whatToDo, Exception? inner = null)
        : base($"{what} — {whatToDo}", inner)
    {
        What = what;
        WhatToDo = whatToDo;
    }

    public string What { get; }

    public string WhatToDo { get; }
}
