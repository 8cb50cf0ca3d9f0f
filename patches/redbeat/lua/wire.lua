-- The record helpers every script starts with, after the WIRE tables store.py writes from its one definition of
-- each record's fields: replies and record arguments are read and written by field name, never by offset.
-- emit(out, record, values): appends values[field] for each field of WIRE[record], in order. A field left out is an
-- error, not a shift of the fields after it (a Lua table cannot hold nil: an empty field is false).
local function emit(out, record, values)
    for _, field in ipairs(WIRE[record]) do
        local value = values[field]
        if value == nil then
            error('wire: ' .. record .. ' record without ' .. field)
        end
        out[#out + 1] = value
    end
end
-- read(args, first, record): the record of args that starts at index first, as a table by field name.
local function read(args, first, record)
    local values = {}
    for i, field in ipairs(WIRE[record]) do
        values[field] = args[first + i - 1]
    end
    return values
end
